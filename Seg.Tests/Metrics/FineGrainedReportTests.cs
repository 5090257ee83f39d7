using Seg.Core;
using Seg.Core.Metrics;
using Seg.Train.Evaluation;
using Seg.Train.Reports;
using Seg.Train.Training;

namespace Seg.Tests.Metrics;

/// <summary>mIoU^I, mIoU^C and the worst cases in metrics.json, eval_log.csv, the reports and eval's summary.</summary>
public class FineGrainedReportTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("seg-report-").FullName;

    public FineGrainedReportTests() => SegRuntime.Initialize();

    public void Dispose() => Directory.Delete(dir, recursive: true);

    // The hand-worked set of FineGrainedMeanIoUTests: image scores 7/12, 3/4, 1 and an unscored image;
    // per class {2/3, 1}, {1/2, 1}, {3/4, 1}.
    static SegmentationMetrics HandWorked()
    {
        using var cm = FineGrainedMeanIoUTests.HandWorked();
        return SegmentationMetrics.From(cm, ["road", "car", "sky"]);
    }

    [Fact]
    public void MetricsJsonHasTheFineGrainedFields()
    {
        var json = MetricsJson.ToJson(HandWorked(), 10);
        Assert.Equal(7.0 / 9, (double)json["mIoU_I"]!, 12);
        Assert.Equal(59.0 / 72, (double)json["mIoU_C"]!, 12);
        Assert.Equal(7.0 / 12, (double)json["mIoU_I_worst5"]!, 12);   // max(1, ⌊0.05·3⌋) = 1 image
        Assert.Equal(7.0 / 12, (double)json["mIoU_I_worst10"]!, 12);
        Assert.Equal(23.0 / 36, (double)json["mIoU_C_worst10"]!, 12);  // each class's lowest: (2/3 + 1/2 + 3/4) / 3
        Assert.Equal((7.0 / 18 + 3.0 / 8 + 1.0) / 3, (double)json["image_mIoU"]!, 12);
        Assert.Equal(3, (long)json["images"]!);
    }

    [Fact]
    public void ReportsShowTheScoresTheHistogramAndTheWorstImages()
    {
        var metrics = HandWorked();
        var result = new EvalResult(metrics, new long[3, 3], [], TimeSpan.FromSeconds(1), 4) { ImageIds = ["a", "b", "c", "d"] };
        var paths = new RunPaths(dir);
        ReportWriter.Write(paths, new ReportData("run", 10, null, result, [(0, 0, 0), (255, 0, 0), (0, 0, 255)], null, 255, null));

        var md = File.ReadAllText(paths.ReportMarkdown);
        Assert.Contains("| mIoU^I (per image) | 77.78 |", md);
        Assert.Contains("| mIoU^I, worst 5 % of images | 58.33 |", md);
        Assert.Contains("| mIoU^C (per class over images) | 81.94 |", md);
        Assert.Contains("| mIoU^C, worst 10 % per class | 63.89 |", md);
        Assert.Contains("| road | 66.67 | 83.33 |", md);                  // dataset IoU 4/6, IoU^C (2/3 + 1) / 2
        // Worst first; "d" has no labelled pixel and is not listed.
        var worst = md[md.IndexOf("## Worst images", StringComparison.Ordinal)..];
        Assert.True(worst.IndexOf("| a | 58.33 |", StringComparison.Ordinal) < worst.IndexOf("| b | 75.00 |", StringComparison.Ordinal));
        Assert.DoesNotContain("| d |", worst);
        Assert.Contains("![Per-image IoU](plots/image_iou.png)", md);
        Assert.True(new FileInfo(Path.Combine(paths.Plots, "image_iou.png")).Length > 1000);

        var html = File.ReadAllText(paths.ReportHtml);
        Assert.Contains("<tr><th>mIoU^I (per image)</th><td>77.78</td></tr>", html);
        Assert.Contains("<h2>Per-image IoU</h2><img", html);
    }

    [Fact]
    public void ReportsWriteTheConfusionMatrixWithCountsAndRowShares()
    {
        // Rows: ground truth, columns: prediction. Row "road" has 6 pixels: 4 right (66.7 %), 1 and 1 (16.7 % each).
        var counts = new long[,] { { 4, 1, 1 }, { 0, 2, 0 }, { 0, 1, 3 } };
        var result = new EvalResult(HandWorked(), counts, [], TimeSpan.FromSeconds(1), 4) { ImageIds = ["a", "b", "c", "d"] };
        var paths = new RunPaths(dir);
        ReportWriter.Write(paths, new ReportData("run", 10, null, result, [(0, 0, 0), (255, 0, 0), (0, 0, 255)], null, 255, null));
        var md = File.ReadAllText(paths.ReportMarkdown);
        Assert.Contains("| truth \\ prediction | road | car | sky |", md);
        Assert.Contains("| road | 4 (66.7 %) | 1 (16.7 %) | 1 (16.7 %) |", md);
        Assert.Contains("| car | 0 (0.0 %) | 2 (100.0 %) | 0 (0.0 %) |", md);
        Assert.Contains("| sky | 0 (0.0 %) | 1 (25.0 %) | 3 (75.0 %) |", md);
        Assert.Contains("<td>road</td><td>4 (66.7 %)</td><td>1 (16.7 %)</td><td>1 (16.7 %)</td>", File.ReadAllText(paths.ReportHtml));
    }

    [Fact]
    public void HistogramCountsUseBinsOfOneTwentieth()
    {
        var counts = Plots.HistogramCounts([0.0, 0.01, 0.52, 0.99, 1.0]);
        Assert.Equal(Plots.HistogramBins, counts.Length);
        Assert.Equal(2, counts[0]);
        Assert.Equal(1, counts[10]);
        Assert.Equal(2, counts[19]);
        Assert.Equal(5, counts.Sum());
    }

    [Fact]
    public void EvalSummaryNamesEveryScore()
    {
        var text = ReportWriter.SummaryText(HandWorked());
        Assert.Contains("mIoU^I 77.78 % (worst 5 %: 58.33 %, worst 10 %: 58.33 %)", text);
        Assert.Contains("mIoU^C 81.94 % (worst 10 %: 63.89 %)", text);
        Assert.Contains("3 images scored", text);
    }

    [Fact]
    public void EvalLogAddsPerImageAndPerClassColumnsAndReadsOlderRows()
    {
        var path = Path.Combine(dir, "eval_log.csv");
        File.WriteAllLines(path, ["iteration,mIoU,aAcc,mAcc,mDice,image_mIoU", "5,0.5,0.9,0.6,0.55,0.4"]); // before mIoU^I existed
        EvalLog.Start(path, resumeIteration: 5);
        EvalLog.Append(path, 10, HandWorked());
        var lines = File.ReadAllLines(path);
        Assert.Equal("iteration,mIoU,aAcc,mAcc,mDice,image_mIoU,mIoU_I,mIoU_C", lines[0]);
        var rows = EvalLog.Read(path);
        Assert.True(double.IsNaN(rows[0].MeanIoUPerImage));
        Assert.Equal(0.4, rows[0].MeanIoUPerImageGtOrPredicted);
        Assert.Equal(7.0 / 9, rows[1].MeanIoUPerImage, 12);
        Assert.Equal(59.0 / 72, rows[1].MeanIoUPerClass, 12);
    }
}
