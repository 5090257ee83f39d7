using System.Globalization;
using Seg.Core.IO;
using Seg.Core.Metrics;

namespace Seg.Train.Reports;

/// <summary>
/// <c>eval_log.csv</c>: <c>iteration,mIoU,aAcc,mAcc,mDice,image_mIoU,mIoU_I,mIoU_C</c> at each validation, for the
/// mIoU curve. Like <see cref="TrainLog"/>, resuming drops rows after the checkpoint (and keeps older rows without
/// the last two columns, which read as NaN).
/// </summary>
public static class EvalLog
{
    const string Header = "iteration,mIoU,aAcc,mAcc,mDice,image_mIoU,mIoU_I,mIoU_C";

    /// <summary>Starts the file, or keeps rows up to <paramref name="resumeIteration"/>.</summary>
    public static void Start(string path, long? resumeIteration)
    {
        var kept = new List<string> { Header };
        if (resumeIteration is { } last && File.Exists(path))
            kept.AddRange(File.ReadAllLines(path).Skip(1)
                .Where(l => l.Length > 0 && long.Parse(l[..l.IndexOf(',')], CultureInfo.InvariantCulture) <= last));
        AtomicFile.WriteAllLines(path, kept);
    }

    /// <summary>Appends one evaluation. The file is rewritten whole (it holds one short row per evaluation), through
    /// <see cref="AtomicFile"/>, so that it is never written through a link.</summary>
    public static void Append(string path, long iteration, SegmentationMetrics m) =>
        AtomicFile.WriteAllLines(path, File.ReadAllLines(path).Append(string.Join(',', new[] { iteration.ToString(CultureInfo.InvariantCulture) }
            .Concat(new[] { m.MeanIoU, m.PixelAccuracy, m.MeanAccuracy, m.MeanDice, m.MeanIoUPerImageGtOrPredicted, m.MeanIoUPerImage, m.MeanIoUPerClass }
                .Select(v => v.ToString("R", CultureInfo.InvariantCulture))))));

    /// <summary>The rows, for the curves (mIoU^I and mIoU^C are NaN in rows written before they were logged).</summary>
    public static IReadOnlyList<EvalLogRow> Read(string path) =>
        !File.Exists(path) ? [] : File.ReadAllLines(path).Skip(1).Where(l => l.Length > 0).Select(l =>
        {
            var c = l.Split(',');
            double At(int i) => i < c.Length ? double.Parse(c[i], CultureInfo.InvariantCulture) : double.NaN;
            return new EvalLogRow(long.Parse(c[0], CultureInfo.InvariantCulture), At(1), At(5), At(6), At(7));
        }).ToList();
}

/// <summary>One evaluation of <c>eval_log.csv</c>, as the curves use it.</summary>
public sealed record EvalLogRow(long Iteration, double MeanIoU, double MeanIoUPerImageGtOrPredicted, double MeanIoUPerImage, double MeanIoUPerClass);
