using System.Globalization;
using System.Net;
using System.Text;
using Seg.Core.IO;
using Seg.Core.Metrics;
using Seg.Data.Transforms;
using Seg.Train.Evaluation;
using Seg.Train.Training;

namespace Seg.Train.Reports;

/// <summary>What a report shows.</summary>
/// <param name="Title">Heading (run name).</param>
/// <param name="Iterations">Training iterations behind the scored model.</param>
/// <param name="Checkpoint">Which checkpoint was scored (for eval reports) or null.</param>
/// <param name="Evaluation">Scores, counts and kept samples.</param>
/// <param name="Palette">Dataset palette.</param>
/// <param name="Normalization">The pipeline's normalisation (to draw images).</param>
/// <param name="IgnoreIndex">Ignored label.</param>
/// <param name="Timing">Training throughput, or null for eval-only reports.</param>
/// <param name="Run">What was trained and how (null: not known, e.g. a bare weight file).</param>
public sealed record ReportData(
    string Title, long Iterations, string? Checkpoint, EvalResult Evaluation,
    IReadOnlyList<(byte R, byte G, byte B)> Palette, Normalize? Normalization, long IgnoreIndex, RunTiming? Timing, RunInfo? Run = null)
{
    /// <summary>Samples that <c>data.on_bad_sample: skip</c> left out (shown when there are any).</summary>
    public SkippedSamples Skipped { get; init; } = SkippedSamples.None;
}

/// <summary>
/// Writes <c>report.md</c> (with PNGs in <c>plots/</c>) and a self-contained <c>report.html</c> (the same PNGs
/// inlined): summary scores (dataset, per-image and per-class mIoU with their worst cases), per-class table and bar
/// chart, histogram of per-image IoU and the worst images (listed and shown), confusion heat map and table, loss and
/// mIoU curves, sample overlays and timing, under a table of what the run was (<see cref="RunInfo"/>) and its warnings.
/// </summary>
public static class ReportWriter
{
    /// <summary>Writes both reports into <paramref name="paths"/>' root.</summary>
    public static void Write(RunPaths paths, ReportData data)
    {
        Directory.CreateDirectory(paths.Plots);
        var m = data.Evaluation.Metrics;
        var names = m.Classes.Select(c => c.Name).ToList();
        var figures = new List<(string Title, string File)>();

        var trainRows = File.Exists(paths.TrainLog) ? TrainLog.Read(paths.TrainLog) : [];
        if (trainRows.Count > 0)
        {
            Plots.LossCurve(Path.Combine(paths.Plots, "loss.png"), trainRows);
            figures.Add(("Training loss", "plots/loss.png"));
        }
        var evalRows = EvalLog.Read(paths.EvalLog);
        if (evalRows.Count > 0)
        {
            Plots.MeanIoUCurve(Path.Combine(paths.Plots, "miou.png"), evalRows);
            figures.Add(("Validation mIoU", "plots/miou.png"));
        }
        Plots.ClassIoUBars(Path.Combine(paths.Plots, "class_iou.png"), m);
        figures.Add(("IoU per class", "plots/class_iou.png"));
        Plots.ImageIoUHistogram(Path.Combine(paths.Plots, "image_iou.png"), m.PerImage);
        figures.Add(("Per-image IoU", "plots/image_iou.png"));
        Plots.ConfusionHeatmap(Path.Combine(paths.Plots, "confusion.png"), data.Evaluation.Counts, names);
        figures.Add(("Confusion matrix", "plots/confusion.png"));
        if (data.Evaluation.Samples.Count > 0)
        {
            SampleGrid.Write(Path.Combine(paths.Plots, "samples.png"), data.Evaluation.Samples, data.Palette, data.Normalization, data.IgnoreIndex, names);
            figures.Add(("Samples: image / ground truth / prediction", "plots/samples.png"));
        }
        if (data.Evaluation.Worst.Count > 0)
        {
            SampleGrid.Write(Path.Combine(paths.Plots, "worst.png"), data.Evaluation.Worst.Select(w => w.Sample).ToList(), data.Palette,
                data.Normalization, data.IgnoreIndex, names, data.Evaluation.Worst.Select(w => w.Score).ToList());
            figures.Add(("Worst images: image / ground truth / prediction", "plots/worst.png"));
        }

        AtomicFile.WriteAllText(paths.ReportMarkdown, Markdown(data, figures));
        AtomicFile.WriteAllText(paths.ReportHtml, Html(paths.Root, data, figures));
    }

    // IoU^C of a class; n/a where the per-image statistics are absent or the class is in no image.
    static double? ClassMean(PerImageScores scores, int c) => c < scores.PerClass.Count ? scores.ClassMean(c) : null;

    static string P(double? v) => v is null ? "n/a" : (100 * v.Value).ToString("F2", CultureInfo.InvariantCulture);

    /// <summary>Number of images in the worst-images table.</summary>
    public const int WorstImagesShown = 10;

    /// <summary>The headline scores in two lines, as <c>eval</c> prints them.</summary>
    public static string SummaryText(SegmentationMetrics m)
    {
        static string Pc(double v) => P(v) + " %";
        return $"mIoU {Pc(m.MeanIoU)}, aAcc {Pc(m.PixelAccuracy)}, mAcc {Pc(m.MeanAccuracy)}, mDice {Pc(m.MeanDice)}, image mIoU {Pc(m.MeanIoUPerImageGtOrPredicted)}"
            + Environment.NewLine
            + $"mIoU^I {Pc(m.MeanIoUPerImage)} (worst 5 %: {Pc(m.WorstMeanIoUPerImage(0.05))}, worst 10 %: {Pc(m.WorstMeanIoUPerImage(0.10))}), "
            + $"mIoU^C {Pc(m.MeanIoUPerClass)} (worst 10 %: {Pc(m.WorstMeanIoUPerClass(0.10))}), {m.Images} images scored";
    }

    const string Legend =
        "Scores in %. mIoU sums intersections and unions over the whole split (mIoU^D); classes with an empty union " +
        "(absent from ground truth and predictions) are n/a and excluded from the means. mIoU^I averages each image's " +
        "mIoU over the classes in its ground truth; mIoU^C averages each class's IoU over the images that contain it " +
        "(column IoU^C); the worst-case rows average the lowest 5 % or 10 % of those values (Wang et al., NeurIPS 2023). " +
        "image mIoU also counts, as IoU 0, classes an image's prediction has but its ground truth lacks.";

    static string BinaryNote(SegmentationMetrics m) => m.PerImage.Binary
        ? " Two classes: an image's score in mIoU^I is the IoU of class 1 (1 when it is absent from ground truth and prediction), as in the official code."
        : "";

    /// <summary>The lowest-scoring images: (id, score), worst first (ties keep evaluation order).</summary>
    public static IReadOnlyList<(string Id, double Score)> WorstImages(EvalResult e) =>
        e.Metrics.PerImage.PerImage
            .Select((v, i) => (Id: i < e.ImageIds.Count ? e.ImageIds[i] : $"#{i}", Score: v))
            .Where(x => x.Score.HasValue).Select(x => (x.Id, x.Score!.Value))
            .OrderBy(x => x.Value).Take(WorstImagesShown).ToList();

    static IEnumerable<(string Key, string Value)> Summary(ReportData d)
    {
        var m = d.Evaluation.Metrics;
        yield return ("mIoU", P(m.MeanIoU));
        yield return ("mIoU^I (per image)", P(m.MeanIoUPerImage));
        yield return ("mIoU^I, worst 5 % of images", P(m.WorstMeanIoUPerImage(0.05)));
        yield return ("mIoU^I, worst 10 % of images", P(m.WorstMeanIoUPerImage(0.10)));
        yield return ("mIoU^C (per class over images)", P(m.MeanIoUPerClass));
        yield return ("mIoU^C, worst 10 % per class", P(m.WorstMeanIoUPerClass(0.10)));
        yield return ("image mIoU", P(m.MeanIoUPerImageGtOrPredicted));
        yield return ("aAcc", P(m.PixelAccuracy));
        yield return ("mAcc", P(m.MeanAccuracy));
        yield return ("mDice", P(m.MeanDice));
        yield return ("iterations", d.Iterations.ToString(CultureInfo.InvariantCulture));
        yield return ("images scored", d.Evaluation.Images.ToString(CultureInfo.InvariantCulture));
        if (d.Evaluation.NonFinitePixels > 0)
            yield return ("pixels with NaN/Inf output, scored as their arg-max", d.Evaluation.NonFinitePixels.ToString(CultureInfo.InvariantCulture));
        if (d.Skipped.Count > 0)
            yield return ("bad samples skipped (on_bad_sample: skip)",
                $"{d.Skipped.Count.ToString(CultureInfo.InvariantCulture)}, e.g. {string.Join("; ", d.Skipped.First.Take(SkippedSamples.Shown))}");
        if (d.Checkpoint is not null && d.Run is null) yield return ("checkpoint", d.Checkpoint);
    }

    /// <summary>Most classes for which the report writes the confusion matrix out as a table.</summary>
    public const int ConfusionTableMaxClasses = 30;

    // Rows: ground truth, columns: prediction; each cell the pixel count and its share of the row.
    static IEnumerable<string[]> ConfusionRows(long[,] counts, IReadOnlyList<string> names)
    {
        var shares = Plots.NormaliseRows(counts);
        for (var i = 0; i < counts.GetLength(0); i++)
            yield return new[] { i < names.Count ? names[i] : $"class{i}" }
                .Concat(Enumerable.Range(0, counts.GetLength(1)).Select(j =>
                    $"{counts[i, j].ToString(CultureInfo.InvariantCulture)} ({(100 * shares[i, j]).ToString("F1", CultureInfo.InvariantCulture)} %)"))
                .ToArray();
    }

    static bool ConfusionTable(ReportData d) =>
        d.Evaluation.Counts.GetLength(0) is > 0 and <= ConfusionTableMaxClasses && d.Evaluation.Counts.GetLength(0) == d.Evaluation.Metrics.Classes.Count;

    static IEnumerable<(string Key, string Value)> TimingRows(ReportData d)
    {
        if (d.Timing is { } t)
        {
            yield return ("training time", $"{t.TrainTime.TotalSeconds:F1} s ({t.Iterations} iterations this session)");
            yield return ("iterations/s", t.IterationsPerSecond.ToString("F2", CultureInfo.InvariantCulture));
            yield return ("images/s", t.ImagesPerSecond.ToString("F1", CultureInfo.InvariantCulture));
            yield return ("data wait", $"{t.DataWaitPercent:F1} %");
            yield return ("evaluation time", $"{t.EvalTime.TotalSeconds:F1} s");
        }
        var e = d.Evaluation;
        yield return ("last evaluation", $"{e.Elapsed.TotalSeconds:F1} s, {(e.Elapsed.TotalSeconds > 0 ? e.Images / e.Elapsed.TotalSeconds : 0):F1} images/s");
    }

    static string Markdown(ReportData d, IReadOnlyList<(string Title, string File)> figures)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"# {d.Title}").AppendLine();
        foreach (var w in d.Run?.Warnings ?? []) sb.AppendLine($"> **Warning:** {w}").AppendLine();
        if (d.Run is { } run)
        {
            sb.AppendLine("## Run").AppendLine().AppendLine("| | |").AppendLine("|---|---|");
            foreach (var (k, v) in run.Rows()) sb.AppendLine($"| {k} | {v.Replace("|", "\\|")} |");
            sb.AppendLine().AppendLine("## Scores").AppendLine();
        }
        sb.AppendLine(Legend + BinaryNote(d.Evaluation.Metrics)).AppendLine();
        sb.AppendLine("| metric | value |").AppendLine("|---|---|");
        foreach (var (k, v) in Summary(d)) sb.AppendLine($"| {k} | {v} |");
        sb.AppendLine().AppendLine("## Per class").AppendLine();
        sb.AppendLine("| class | IoU | IoU^C | Acc | Dice | Precision | Recall |").AppendLine("|---|---|---|---|---|---|---|");
        var scores = d.Evaluation.Metrics.PerImage;
        foreach (var c in d.Evaluation.Metrics.Classes)
            sb.AppendLine($"| {c.Name} | {P(c.IoU)} | {P(ClassMean(scores, c.Index))} | {P(c.Accuracy)} | {P(c.Dice)} | {P(c.Precision)} | {P(c.Recall)} |");
        var worst = WorstImages(d.Evaluation);
        if (worst.Count > 0)
        {
            sb.AppendLine().AppendLine("## Worst images (lowest mIoU^I scores)").AppendLine();
            sb.AppendLine("| image | score |").AppendLine("|---|---|");
            foreach (var (id, score) in worst) sb.AppendLine($"| {id} | {P(score)} |");
        }
        if (ConfusionTable(d))
        {
            var names = d.Evaluation.Metrics.Classes.Select(c => c.Name).ToList();
            sb.AppendLine().AppendLine("## Confusion matrix (pixels; rows: ground truth, columns: prediction; % of the row)").AppendLine();
            sb.AppendLine("| truth \\ prediction | " + string.Join(" | ", names) + " |");
            sb.AppendLine("|---|" + string.Concat(names.Select(_ => "---|")));
            foreach (var row in ConfusionRows(d.Evaluation.Counts, names)) sb.AppendLine("| " + string.Join(" | ", row) + " |");
        }
        sb.AppendLine().AppendLine("## Timing").AppendLine();
        sb.AppendLine("| | |").AppendLine("|---|---|");
        foreach (var (k, v) in TimingRows(d)) sb.AppendLine($"| {k} | {v} |");
        foreach (var (title, file) in figures)
            sb.AppendLine().AppendLine($"## {title}").AppendLine().AppendLine($"![{title}]({file})");
        return sb.ToString();
    }

    static string Html(string root, ReportData d, IReadOnlyList<(string Title, string File)> figures)
    {
        static string E(string s) => WebUtility.HtmlEncode(s);
        var sb = new StringBuilder();
        sb.AppendLine("<!DOCTYPE html><html><head><meta charset=\"utf-8\">");
        sb.AppendLine($"<title>{E(d.Title)}</title>");
        sb.AppendLine("<style>body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%}.na{color:#999}.run td{text-align:left}.warning{background:#fff3cd;border:2px solid #e0a800;padding:8px 12px}</style>");
        sb.AppendLine("</head><body>");
        sb.AppendLine($"<h1>{E(d.Title)}</h1>");
        foreach (var w in d.Run?.Warnings ?? []) sb.AppendLine($"<p class=\"warning\"><strong>Warning:</strong> {E(w)}</p>");
        if (d.Run is { } run)
        {
            sb.AppendLine("<h2>Run</h2><table class=\"run\">");
            foreach (var (k, v) in run.Rows()) sb.AppendLine($"<tr><th>{E(k)}</th><td>{E(v)}</td></tr>");
            sb.AppendLine("</table><h2>Scores</h2>");
        }
        sb.AppendLine($"<p>{E(Legend + BinaryNote(d.Evaluation.Metrics))}</p>");
        sb.AppendLine("<table>");
        foreach (var (k, v) in Summary(d)) sb.AppendLine($"<tr><th>{E(k)}</th><td>{E(v)}</td></tr>");
        sb.AppendLine("</table><h2>Per class</h2><table><tr><th>class</th><th>IoU</th><th>IoU^C</th><th>Acc</th><th>Dice</th><th>Precision</th><th>Recall</th></tr>");
        var scores = d.Evaluation.Metrics.PerImage;
        string Cell(double? v) => v is null ? "<td class=\"na\">n/a</td>" : $"<td>{P(v)}</td>";
        foreach (var c in d.Evaluation.Metrics.Classes)
            sb.AppendLine($"<tr><td>{E(c.Name)}</td>{Cell(c.IoU)}{Cell(ClassMean(scores, c.Index))}{Cell(c.Accuracy)}{Cell(c.Dice)}{Cell(c.Precision)}{Cell(c.Recall)}</tr>");
        sb.AppendLine("</table>");
        var worst = WorstImages(d.Evaluation);
        if (worst.Count > 0)
        {
            sb.AppendLine("<h2>Worst images (lowest mIoU^I scores)</h2><table><tr><th>image</th><th>score</th></tr>");
            foreach (var (id, score) in worst) sb.AppendLine($"<tr><td>{E(id)}</td>{Cell(score)}</tr>");
            sb.AppendLine("</table>");
        }
        if (ConfusionTable(d))
        {
            var names = d.Evaluation.Metrics.Classes.Select(c => c.Name).ToList();
            sb.AppendLine("<h2>Confusion matrix</h2><p>Pixels; rows: ground truth, columns: prediction; % of the row.</p><table><tr><th>truth \\ prediction</th>"
                + string.Concat(names.Select(n => $"<th>{E(n)}</th>")) + "</tr>");
            foreach (var row in ConfusionRows(d.Evaluation.Counts, names))
                sb.AppendLine($"<tr><td>{E(row[0])}</td>" + string.Concat(row.Skip(1).Select(c => $"<td>{E(c)}</td>")) + "</tr>");
            sb.AppendLine("</table>");
        }
        sb.AppendLine("<h2>Timing</h2><table>");
        foreach (var (k, v) in TimingRows(d)) sb.AppendLine($"<tr><th>{E(k)}</th><td>{E(v)}</td></tr>");
        sb.AppendLine("</table>");
        foreach (var (title, file) in figures)
        {
            var bytes = File.ReadAllBytes(Path.Combine(root, file));
            sb.AppendLine($"<h2>{E(title)}</h2><img alt=\"{E(title)}\" src=\"data:image/png;base64,{Convert.ToBase64String(bytes)}\">");
        }
        sb.AppendLine("</body></html>");
        return sb.ToString();
    }
}
