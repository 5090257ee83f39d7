using ScottPlot;
using Seg.Core.IO;
using Seg.Core.Metrics;

namespace Seg.Train.Reports;

/// <summary>
/// The report's charts as PNG files (ScottPlot): loss and mIoU curves, per-class IoU bars, confusion heat map,
/// histogram of per-image IoU.
/// </summary>
public static class Plots
{
    const int Width = 800, Height = 450;

    /// <summary>Total loss and each term against iteration (a moving average smooths the noise of single steps).</summary>
    public static void LossCurve(string path, IReadOnlyList<TrainLogRow> rows)
    {
        var plot = new Plot();
        if (rows.Count > 0)
        {
            var xs = rows.Select(r => (double)r.Iteration).ToArray();
            AddLine(plot, xs, Smooth(rows.Select(r => r.Loss).ToArray()), "loss");
            foreach (var term in rows[0].Terms.Keys)
            {
                var ys = Smooth(rows.Select(r => r.Terms[term]).ToArray());
                AddLine(plot, xs, ys, term);
            }
            plot.ShowLegend();
        }
        plot.Title("Training loss");
        plot.XLabel("iteration");
        plot.YLabel("loss (moving average)");
        Save(plot, path, Width, Height);
    }

    /// <summary>Validation mIoU, image mIoU, mIoU^I and mIoU^C against iteration. A run evaluates a few times (the
    /// default: twice), so every evaluation is a marked point, the x axis starts at iteration 0 and ends just past
    /// the last evaluation, and with up to <see cref="LabelledEvaluations"/> evaluations each mIoU point carries its value.</summary>
    public static void MeanIoUCurve(string path, IReadOnlyList<EvalLogRow> rows)
    {
        var plot = new Plot();
        if (rows.Count > 0)
        {
            var xs = rows.Select(r => (double)r.Iteration).ToArray();
            AddLine(plot, xs, rows.Select(r => r.MeanIoU).ToArray(), "mIoU", markerSize: 9);
            AddLine(plot, xs, rows.Select(r => r.MeanIoUPerImageGtOrPredicted).ToArray(), "image mIoU");
            AddLine(plot, xs, rows.Select(r => r.MeanIoUPerImage).ToArray(), "mIoU^I");
            AddLine(plot, xs, rows.Select(r => r.MeanIoUPerClass).ToArray(), "mIoU^C");
            if (rows.Count <= LabelledEvaluations)
                foreach (var r in rows.Where(r => double.IsFinite(r.MeanIoU)))
                {
                    var label = plot.Add.Text(r.MeanIoU.ToString("F3", System.Globalization.CultureInfo.InvariantCulture), r.Iteration, r.MeanIoU);
                    label.LabelFontSize = 13;
                    label.LabelBold = true;
                    label.LabelAlignment = Alignment.LowerCenter;
                    label.LabelOffsetY = -8;
                }
            plot.ShowLegend(Edge.Right);   // beside the plot: inside, it would hide points wherever they lie
            plot.Axes.SetLimitsX(0, Math.Max(1, xs.Max()) * 1.08);
        }
        plot.Axes.SetLimitsY(0, 1.05);
        plot.Title($"Validation mIoU ({rows.Count} evaluation{(rows.Count == 1 ? "" : "s")})");
        plot.XLabel("iteration");
        plot.YLabel("score (0-1)");
        Save(plot, path, Width, Height);
    }

    /// <summary>Most evaluations whose mIoU <see cref="MeanIoUCurve"/> writes beside its point.</summary>
    public const int LabelledEvaluations = 12;

    /// <summary>IoU per class (classes excluded from the mean are drawn at 0 and named "(n/a)").</summary>
    public static void ClassIoUBars(string path, SegmentationMetrics metrics)
    {
        var plot = new Plot();
        var values = metrics.Classes.Select(c => c.IoU ?? 0.0).ToArray();
        plot.Add.Bars(values);
        var positions = Enumerable.Range(0, values.Length).Select(i => (double)i).ToArray();
        var labels = metrics.Classes.Select(c => c.IoU is null ? $"{c.Name} (n/a)" : c.Name).ToArray();
        plot.Axes.Bottom.SetTicks(positions, labels);
        RotateIfCrowded(plot, labels.Length);
        plot.Axes.SetLimitsY(0, 1);
        plot.Title($"IoU per class (mIoU {metrics.MeanIoU:P1})");
        plot.YLabel("IoU");
        Save(plot, path, Width, Height + 100);
    }

    /// <summary>
    /// Histogram of the per-image scores (the values behind mIoU^I) in <see cref="HistogramBins"/> bins over [0, 1],
    /// with the mean (mIoU^I) and the worst-10 % mean marked: the failures a mean hides show up as a left tail.
    /// </summary>
    public static void ImageIoUHistogram(string path, PerImageScores scores)
    {
        var plot = new Plot();
        var values = scores.PerImage.Where(v => v.HasValue).Select(v => v!.Value).ToArray();
        var counts = HistogramCounts(values);
        var width = 1.0 / HistogramBins;
        var bars = plot.Add.Bars(Enumerable.Range(0, HistogramBins).Select(i => (i + 0.5) * width).ToArray(), counts.Select(c => (double)c).ToArray());
        foreach (var bar in bars.Bars) bar.Size = width * 0.95;
        if (values.Length > 0)
        {
            var mean = plot.Add.VerticalLine(scores.MeanPerImage);
            mean.LegendText = $"mIoU^I {scores.MeanPerImage:P1}";
            var worst = plot.Add.VerticalLine(scores.WorstPerImage(0.1));
            worst.LegendText = $"worst 10 % mean {scores.WorstPerImage(0.1):P1}";
            worst.LinePattern = LinePattern.Dashed;
            plot.ShowLegend(Alignment.UpperLeft);
        }
        plot.Axes.SetLimitsX(0, 1);
        plot.Axes.SetLimitsY(0, Math.Max(1, counts.Max()) * 1.1);
        plot.Title($"Per-image IoU ({values.Length} images{(scores.Binary ? ", foreground IoU" : "")})");
        plot.XLabel(scores.Binary ? "foreground IoU of the image" : "mean IoU over the classes in the image's ground truth");
        plot.YLabel("images");
        Save(plot, path, Width, Height);
    }

    /// <summary>Number of bins of <see cref="ImageIoUHistogram"/>: 0.05 wide.</summary>
    public const int HistogramBins = 20;

    /// <summary>Counts of <paramref name="values"/> in [0, 1] per bin of width 1 / <see cref="HistogramBins"/> (1.0 falls in the last bin).</summary>
    public static int[] HistogramCounts(IEnumerable<double> values)
    {
        var counts = new int[HistogramBins];
        foreach (var v in values)
            counts[Math.Clamp((int)Math.Floor(v * HistogramBins), 0, HistogramBins - 1)]++;
        return counts;
    }

    /// <summary>Confusion matrix with rows normalised to sum 1 (row: ground truth, column: prediction); with up to
    /// <see cref="NumberedClasses"/> classes each cell shows its share of the row in %.</summary>
    public static void ConfusionHeatmap(string path, long[,] counts, IReadOnlyList<string> classNames)
    {
        var plot = new Plot();
        var normalised = NormaliseRows(counts);
        var heatmap = plot.Add.Heatmap(normalised);
        heatmap.Colormap = new ScottPlot.Colormaps.Viridis();
        heatmap.ManualRange = new ScottPlot.Range(0, 1);
        plot.Add.ColorBar(heatmap);
        var c = classNames.Count;
        var positions = Enumerable.Range(0, c).Select(i => (double)i).ToArray();
        plot.Axes.Bottom.SetTicks(positions, classNames.ToArray());
        RotateIfCrowded(plot, c);
        // Heat map row 0 is drawn at the top: label the left axis top-down.
        plot.Axes.Left.SetTicks(positions.Select(p => c - 1 - p).ToArray(), classNames.ToArray());
        if (c <= NumberedClasses)
            for (var i = 0; i < normalised.GetLength(0); i++)
                for (var j = 0; j < normalised.GetLength(1); j++)
                {
                    var share = normalised[i, j];
                    var text = plot.Add.Text((100 * share).ToString(share >= 0.995 || share == 0 ? "F0" : "F1", System.Globalization.CultureInfo.InvariantCulture), j, c - 1 - i);
                    text.LabelAlignment = Alignment.MiddleCenter;
                    text.LabelFontSize = c <= 8 ? 16 : c <= 14 ? 12 : 9;
                    // Viridis is dark at the low end and light at the high end.
                    text.LabelFontColor = share < 0.6 ? Colors.White : Colors.Black;
                }
        plot.Title("Confusion matrix (% of each ground-truth row)");
        plot.XLabel("prediction");
        plot.YLabel("ground truth");
        Save(plot, path, Width, Width);
    }

    /// <summary>Most classes for which <see cref="ConfusionHeatmap"/> writes numbers into the cells.</summary>
    public const int NumberedClasses = 20;

    // Many class names do not fit side by side: slant them and leave room below the axis.
    static void RotateIfCrowded(Plot plot, int count)
    {
        if (count <= 8) return;
        plot.Axes.Bottom.TickLabelStyle.Rotation = 45;
        plot.Axes.Bottom.TickLabelStyle.Alignment = Alignment.MiddleLeft;
        plot.Axes.Bottom.MinimumSize = 120;
    }

    /// <summary>Each row divided by its sum (rows with no pixels stay 0).</summary>
    public static double[,] NormaliseRows(long[,] counts)
    {
        int n = counts.GetLength(0), m = counts.GetLength(1);
        var result = new double[n, m];
        for (var i = 0; i < n; i++)
        {
            long sum = 0;
            for (var j = 0; j < m; j++) sum += counts[i, j];
            for (var j = 0; j < m; j++) result[i, j] = sum == 0 ? 0 : (double)counts[i, j] / sum;
        }
        return result;
    }

    static void AddLine(Plot plot, double[] xs, double[] ys, string label, float markerSize = 6)
    {
        var keep = ys.Select((y, i) => (y, i)).Where(p => double.IsFinite(p.y)).ToArray();
        if (keep.Length == 0) return;
        var scatter = plot.Add.Scatter(keep.Select(p => xs[p.i]).ToArray(), keep.Select(p => p.y).ToArray());
        scatter.LegendText = label;
        scatter.MarkerSize = keep.Length > 50 ? 0 : markerSize;
    }

    /// <summary>Trailing moving average over up to 1 % of the points (at least 1); NaN entries stay NaN.</summary>
    public static double[] Smooth(double[] values)
    {
        var window = Math.Max(1, values.Length / 100);
        var result = new double[values.Length];
        for (var i = 0; i < values.Length; i++)
        {
            if (double.IsNaN(values[i])) { result[i] = double.NaN; continue; }
            double sum = 0;
            var n = 0;
            for (var j = Math.Max(0, i - window + 1); j <= i; j++)
                if (!double.IsNaN(values[j])) { sum += values[j]; n++; }
            result[i] = sum / n;
        }
        return result;
    }

    // Through AtomicFile: a PNG that cannot be written fails here, naming the file, not later in the report.
    static void Save(Plot plot, string path, int width, int height)
    {
        using var image = plot.GetImage(width, height);
        AtomicFile.WriteAllBytes(path, image.GetImageBytes(ImageFormat.Png, 100));
    }
}
