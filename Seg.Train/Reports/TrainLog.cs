using System.Globalization;
using System.Text;
using Seg.Core.IO;

namespace Seg.Train.Reports;

/// <summary>
/// <c>train_log.csv</c>: <c>iteration,loss,&lt;one column per loss term&gt;,lr</c>, one row per logged step. A term
/// not active at a step has an empty cell. Numbers are written round-trip exact, so that a resumed run's file can
/// be compared byte for byte with an uninterrupted one. Opening for resume drops rows after the checkpoint.
/// </summary>
public sealed class TrainLog : IDisposable
{
    readonly StreamWriter writer;
    readonly IReadOnlyList<string> terms;

    TrainLog(StreamWriter writer, IReadOnlyList<string> terms)
    {
        this.writer = writer;
        this.terms = terms;
    }

    /// <summary>The CSV header for these term names.</summary>
    public static string Header(IReadOnlyList<string> terms) => string.Join(',', ["iteration", "loss", .. terms, "lr"]);

    /// <summary>
    /// Starts a new log (<paramref name="resumeIteration"/> null) or continues an existing one, keeping only rows
    /// whose iteration is at most <paramref name="resumeIteration"/>.
    /// </summary>
    /// <exception cref="InvalidDataException">Resuming a log whose header names other loss terms.</exception>
    public static TrainLog Open(string path, IReadOnlyList<string> terms, long? resumeIteration)
    {
        var header = Header(terms);
        var kept = new List<string> { header };
        if (resumeIteration is { } last && File.Exists(path))
        {
            var lines = File.ReadAllLines(path);
            if (lines.Length > 0 && lines[0] != header)
                throw new InvalidDataException($"{path}: header '{lines[0]}' does not match this config's loss terms ('{header}'); resume with the config that started the run.");
            kept.AddRange(lines.Skip(1).Where(l => l.Length > 0 && long.Parse(l[..l.IndexOf(',')], CultureInfo.InvariantCulture) <= last));
        }
        var encoding = new UTF8Encoding(false);
        var stream = AtomicFile.CreateForAppend(path, encoding.GetBytes(string.Concat(kept.Select(l => l + "\n"))));
        return new TrainLog(new StreamWriter(stream, encoding) { NewLine = "\n" }, terms);
    }

    /// <summary>Appends a row; <paramref name="termValues"/> holds the active terms only.</summary>
    public void Append(long iteration, double loss, IReadOnlyDictionary<string, double> termValues, double lr)
    {
        var row = new StringBuilder();
        row.Append(iteration.ToString(CultureInfo.InvariantCulture)).Append(',').Append(Format(loss));
        foreach (var term in terms)
            row.Append(',').Append(termValues.TryGetValue(term, out var v) ? Format(v) : "");
        row.Append(',').Append(Format(lr));
        writer.WriteLine(row.ToString());
    }

    /// <summary>Pushes buffered rows to the file (done at checkpoints, so that the log never lags its checkpoint).</summary>
    public void Flush() => writer.Flush();

    static string Format(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>Reads rows back: iteration, loss, per-term values (NaN when empty), lr.</summary>
    public static IReadOnlyList<TrainLogRow> Read(string path)
    {
        var lines = File.ReadAllLines(path);
        if (lines.Length == 0) return [];
        var columns = lines[0].Split(',');
        var termNames = columns[2..^1];
        return lines.Skip(1).Where(l => l.Length > 0).Select(l =>
        {
            var cells = l.Split(',');
            double Parse(string s) => s.Length == 0 ? double.NaN : double.Parse(s, CultureInfo.InvariantCulture);
            var termValues = new Dictionary<string, double>();
            for (var i = 0; i < termNames.Length; i++) termValues[termNames[i]] = Parse(cells[2 + i]);
            return new TrainLogRow(long.Parse(cells[0], CultureInfo.InvariantCulture), Parse(cells[1]), termValues, Parse(cells[^1]));
        }).ToList();
    }

    /// <inheritdoc />
    public void Dispose() => writer.Dispose();
}

/// <summary>One parsed <c>train_log.csv</c> row.</summary>
public sealed record TrainLogRow(long Iteration, double Loss, IReadOnlyDictionary<string, double> Terms, double Lr);
