using System.Text.Json.Nodes;
using Seg.Core;
using Seg.Core.Metrics;
using static TorchSharp.torch;

namespace Seg.Tests.Metrics;

/// <summary>mIoU^I, mIoU^C and their worst-case variants (Wang et al., NeurIPS 2023) from per-image statistics.</summary>
public class FineGrainedMeanIoUTests
{
    public FineGrainedMeanIoUTests() => SegRuntime.Initialize();

    // Hand-worked, C = 3 (X = ignored). Three 2×3 images in one batch, then an image with no labelled pixel.
    //   A  labels 0 0 0 / 1 1 1   preds 0 0 1 / 1 1 2   IoU0 = 2/3, IoU1 = 2/4; class 2 only predicted -> not averaged
    //   B  labels 2 2 2 / 2 X X   preds 2 2 0 / 2 1 1   IoU2 = 3/4; class 0 only predicted -> not averaged
    //   C  labels 0 0 1 / 1 2 2   preds the same        all IoU 1
    //   D  all ignored                                   not scored
    // Image scores: 7/12, 3/4, 1 -> mIoU^I = 7/9. Per class: c0 {2/3, 1}, c1 {1/2, 1}, c2 {3/4, 1} -> mIoU^C = 59/72.
    internal static ConfusionMatrix HandWorked()
    {
        var cm = new ConfusionMatrix(3);
        cm.Update(tensor(new long[] { 0, 0, 1, 1, 1, 2, 2, 2, 0, 2, 1, 1, 0, 0, 1, 1, 2, 2 }).view(3, 2, 3),
                  tensor(new long[] { 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 255, 255, 0, 0, 1, 1, 2, 2 }).view(3, 2, 3));
        cm.Update(zeros(1, 2, 3, dtype: ScalarType.Int64), full(1, 2, 3, 255L, dtype: ScalarType.Int64));
        return cm;
    }

    [Fact]
    public void PerImageAndPerClassMeansMatchHandWorkedExample()
    {
        using var cm = HandWorked();
        var m = SegmentationMetrics.From(cm);
        Assert.Equal(7.0 / 9, m.MeanIoUPerImage, 12);
        Assert.Equal(59.0 / 72, m.MeanIoUPerClass, 12);
        Assert.Equal(3, m.Images);
        Assert.Equal(new double?[] { 7.0 / 12, 3.0 / 4, 1.0, null }.Select(Round), m.PerImage.PerImage.Select(Round));
        Assert.Equal(new double?[] { 2.0 / 3, 1.0 }.Select(Round), m.PerImage.PerClass[0].Select(v => Round(v)));
        Assert.False(m.PerImage.Binary);
    }

    [Fact]
    public void WorstCaseMeansMatchHandWorkedExample()
    {
        using var cm = HandWorked();
        var m = SegmentationMetrics.From(cm);
        // Three scored images: q = 5 %, 10 % and 50 % keep max(1, ⌊q·3⌋) = 1 image, 70 % keeps 2, 100 % all.
        Assert.Equal(7.0 / 12, m.WorstMeanIoUPerImage(0.05), 12);
        Assert.Equal(7.0 / 12, m.WorstMeanIoUPerImage(0.5), 12);
        Assert.Equal((7.0 / 12 + 3.0 / 4) / 2, m.WorstMeanIoUPerImage(0.7), 12);
        Assert.Equal(7.0 / 9, m.WorstMeanIoUPerImage(1.0), 12);
        // Each class is in two images: 10 % keeps its lowest: (2/3 + 1/2 + 3/4) / 3.
        Assert.Equal(23.0 / 36, m.WorstMeanIoUPerClass(0.1), 12);
        Assert.Equal(59.0 / 72, m.WorstMeanIoUPerClass(1.0), 12);
    }

    [Fact]
    public void ImageMeanIoUKeepsItsUnionDefinition()
    {
        // image_mIoU also averages classes that are only predicted (IoU 0): A (2/3 + 1/2 + 0) / 3, B (0 + 3/4) / 2, C 1.
        using var cm = HandWorked();
        var m = SegmentationMetrics.From(cm);
        Assert.Equal((7.0 / 18 + 3.0 / 8 + 1.0) / 3, m.MeanIoUPerImageGtOrPredicted, 12);
        Assert.Equal(3, cm.ImageCount);
        Assert.Equal(7.0 / 18 + 3.0 / 8 + 1.0, cm.ImageIoUSum, 12);
    }

    // Two classes, four 1×4 images (the official binary rule):
    //   P  labels 0 0 1 1  preds 0 1 1 1   foreground IoU 2/3          background IoU 1/2
    //   Q  labels 0 0 0 0  preds 0 0 0 0   foreground absent in both: 1 background IoU 1
    //   R  labels 0 0 0 0  preds 0 0 0 1   foreground only predicted: 0 background IoU 3/4
    //   S  labels 1 1 X X  preds 0 1 0 0   foreground IoU 1/2          background only predicted: 0
    // mIoU^I = (2/3 + 1 + 0 + 1/2) / 4 = 13/24. mIoU^C (classes active where in ground truth or prediction):
    // background {1/2, 1, 3/4, 0} -> 9/16, foreground {2/3, 0, 1/2} -> 7/18; mean 137/288.
    static ConfusionMatrix Binary()
    {
        var cm = new ConfusionMatrix(2);
        cm.Update(tensor(new long[] { 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0 }).view(4, 1, 4),
                  tensor(new long[] { 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 255, 255 }).view(4, 1, 4));
        return cm;
    }

    [Fact]
    public void TwoClassDatasetsScoreTheForegroundAsTheOfficialCodeDoes()
    {
        using var cm = Binary();
        var m = SegmentationMetrics.From(cm);
        Assert.True(m.PerImage.Binary);
        Assert.Equal(13.0 / 24, m.MeanIoUPerImage, 12);
        Assert.Equal(137.0 / 288, m.MeanIoUPerClass, 12);
        Assert.Equal(0.0, m.WorstMeanIoUPerImage(0.25), 12);          // n = 1
        Assert.Equal((0.0 + 0.5) / 2, m.WorstMeanIoUPerImage(0.5), 12); // n = 2
        Assert.Equal((0.25 + 0.0) / 2, m.WorstMeanIoUPerClass(0.5), 12); // background n = 2, foreground n = 1
        // image_mIoU (unchanged) averages both classes over their unions: (7/12 + 1 + 3/8 + 1/4) / 4.
        Assert.Equal(53.0 / 96, m.MeanIoUPerImageGtOrPredicted, 12);
    }

    [Fact]
    public void TwoClassRuleCanBeTurnedOff()
    {
        // Without it the per-image rule is the multi-class one: P (1/2 + 2/3) / 2, Q 1, R 3/4, S 1/2.
        using var cm = Binary();
        var scores = PerImageScores.From(cm.ToImageStatistics(), binary: false);
        Assert.False(scores.Binary);
        Assert.Equal((7.0 / 12 + 1 + 3.0 / 4 + 1.0 / 2) / 4, scores.MeanPerImage, 12);
        Assert.Throws<ArgumentException>(() => PerImageScores.From(HandWorked().ToImageStatistics(), binary: true));
    }

    [Fact]
    public void WorstCountIsMaxOfOneAndTheFloorOfQTimesCount()
    {
        Assert.Equal(1, PerImageScores.WorstCount(0.05, 19));  // 0.95 -> 1
        Assert.Equal(1, PerImageScores.WorstCount(0.05, 20));
        Assert.Equal(2, PerImageScores.WorstCount(0.05, 40));
        Assert.Equal(3, PerImageScores.WorstCount(0.1, 39));
        Assert.Equal(29, PerImageScores.WorstCount(0.29, 100)); // 0.29 * 100 = 28.999... in doubles
        Assert.Equal(7, PerImageScores.WorstCount(1.0, 7));
        Assert.Equal(0, PerImageScores.WorstCount(0.1, 0));
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(-0.1)]
    [InlineData(1.5)]
    [InlineData(double.NaN)]
    public void FractionOutsideZeroToOneIsRejected(double q)
    {
        using var cm = HandWorked();
        var m = SegmentationMetrics.From(cm);
        Assert.Equal("q", Assert.Throws<ArgumentOutOfRangeException>(() => m.WorstMeanIoUPerImage(q)).ParamName);
        Assert.Equal("q", Assert.Throws<ArgumentOutOfRangeException>(() => m.WorstMeanIoUPerClass(q)).ParamName);
    }

    [Fact]
    public void StatisticsBuiltByHandAreValidatedAndScored()
    {
        // Image 0: class 0 tp 3, fn 1; class 1 fp 1 (only predicted). Image 1: nothing labelled.
        var stats = new ImageStatistics(new long[,] { { 3, 0 }, { 0, 0 } }, new long[,] { { 0, 1 }, { 0, 0 } }, new long[,] { { 1, 0 }, { 0, 0 } });
        Assert.Equal((2, 1), (stats.Images, stats.ScoredImages));
        Assert.False(stats.Scored(1));
        Assert.Equal(3.0 / 4, PerImageScores.From(stats, binary: false).MeanPerImage, 12); // class 1 not in the ground truth
        Assert.Equal(0.0, PerImageScores.From(stats).MeanPerImage, 12);                    // two classes: foreground only predicted
        Assert.Equal("falsePositives", Assert.Throws<ArgumentException>(() => new ImageStatistics(new long[2, 2], new long[2, 3], new long[2, 2])).ParamName);
        Assert.Contains("negative", Assert.Throws<ArgumentException>(() => new ImageStatistics(new long[,] { { -1 } }, new long[1, 1], new long[1, 1])).Message);
    }

    [Fact]
    public void NothingScoredGivesZeros()
    {
        using var cm = new ConfusionMatrix(3);
        cm.Update(zeros(2, 2, 2, dtype: ScalarType.Int64), full(2, 2, 2, 255L, dtype: ScalarType.Int64));
        var m = SegmentationMetrics.From(cm);
        Assert.Equal(0, m.Images);
        Assert.Equal(0.0, m.MeanIoUPerImage);
        Assert.Equal(0.0, m.MeanIoUPerClass);
        Assert.Equal(0.0, m.WorstMeanIoUPerImage(0.1));
        Assert.Equal(0.0, SegmentationMetrics.FromCounts(new long[3, 3]).MeanIoUPerClass);
    }

    [Fact]
    public void OutOfRangeValuesFoundOnTheDeviceAreThrownWhenResultsAreRead()
    {
        // What a CUDA update does: no host sync in Update, the range verdict is read with the results.
        using var cm = new ConfusionMatrix(3) { DeferRangeCheck = true };
        cm.Update(tensor(new long[] { 0, 1 }), tensor(new long[] { 0, 7 }));
        Assert.Contains("max 7", Assert.Throws<ArgumentException>(() => cm.ToArray()).Message);
        Assert.Contains("max 7", Assert.Throws<ArgumentException>(() => SegmentationMetrics.From(cm)).Message);

        using var badPrediction = new ConfusionMatrix(3) { DeferRangeCheck = true };
        badPrediction.Update(tensor(new long[] { -1, 1 }), tensor(new long[] { 0, 1 }));
        Assert.Contains("predictions hold class indices outside [0, 3) (min -1", Assert.Throws<ArgumentException>(() => badPrediction.ToImageStatistics()).Message);
    }

    [Theory]
    [InlineData(2, 11)]
    [InlineData(3, 12)]
    [InlineData(5, 13)]
    public void MatchBruteForceOracleOnRandomBatches(int classes, int seed)
    {
        var gen = new Random(seed);
        var images = new List<(long[] Labels, long[] Predictions)>();
        using var cm = new ConfusionMatrix(classes);
        using var first = new ConfusionMatrix(classes);
        using var second = new ConfusionMatrix(classes);
        for (var batch = 0; batch < 25; batch++)   // about 125 images: the per-image buffer grows past its first 64 rows
        {
            int b = gen.Next(1, 10), h = 3, w = gen.Next(2, 5);
            var labels = new long[b * h * w];
            var preds = new long[labels.Length];
            for (var i = 0; i < b; i++)
            {
                var kind = gen.Next(8); // 0: nothing labelled; 1: one class only; else mixed
                var only = gen.Next(classes);
                for (var p = 0; p < h * w; p++)
                {
                    var at = i * h * w + p;
                    labels[at] = kind == 0 || gen.Next(6) == 0 ? 255 : kind == 1 ? only : gen.Next(classes);
                    preds[at] = gen.Next(3) == 0 ? gen.Next(classes) : Math.Min(labels[at], classes - 1);
                }
                images.Add((labels[(i * h * w)..((i + 1) * h * w)], preds[(i * h * w)..((i + 1) * h * w)]));
            }
            var (pt, lt) = (tensor(preds).view(b, h, w), tensor(labels).view(b, h, w));
            cm.Update(pt, lt);
            (batch % 2 == 0 ? first : second).Update(pt, lt);
        }

        var oracle = new FineGrainedOracle(images, classes, 255);
        var m = SegmentationMetrics.From(cm);
        Assert.Equal(oracle.ScoredImages, m.Images);
        Assert.Equal(oracle.MeanPerImage(), m.MeanIoUPerImage, 12);
        Assert.Equal(oracle.MeanPerClass(), m.MeanIoUPerClass, 12);
        Assert.Equal(oracle.UnionImageMean(), m.MeanIoUPerImageGtOrPredicted, 12);
        foreach (var percent in new[] { 5, 10, 25, 50, 100 })
        {
            Assert.Equal(oracle.MeanPerImage(percent), m.WorstMeanIoUPerImage(percent / 100.0), 12);
            Assert.Equal(oracle.MeanPerClass(percent), m.WorstMeanIoUPerClass(percent / 100.0), 12);
        }

        // Merging matrices that saw alternate batches keeps every image; only their order changes.
        first.Merge(second);
        var merged = SegmentationMetrics.From(first);
        Assert.Equal(m.MeanIoUPerImage, merged.MeanIoUPerImage, 12);
        Assert.Equal(m.MeanIoUPerClass, merged.MeanIoUPerClass, 12);
        Assert.Equal(m.WorstMeanIoUPerImage(0.1), merged.WorstMeanIoUPerImage(0.1), 12);
        Assert.Equal(cm.ToArray(), first.ToArray());
    }

    [Theory]
    [InlineData("four_classes")]
    [InlineData("two_classes")]
    public void MatchOfficialDefinitionsComputedWithPyTorch(string name)
    {
        // Fixtures/metrics/make_fixtures.py: the official code's definitions in PyTorch 1.13 on random labels.
        var root = JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "metrics", "fine_grained_miou_expected.json")))!;
        var c = root["cases"]!.AsArray().Single(x => (string)x!["name"]! == name)!;
        var shape = c["shape"]!.AsArray().Select(v => (long)v!).ToArray();
        var labels = tensor(c["labels"]!.AsArray().Select(v => (long)v!).ToArray()).view(shape);
        var preds = tensor(c["predictions"]!.AsArray().Select(v => (long)v!).ToArray()).view(shape);
        using var cm = new ConfusionMatrix((int)c["num_classes"]!, (long)c["ignore_index"]!);
        var batch = (long)c["batch"]!;
        for (long start = 0; start < shape[0]; start += batch)
        {
            var end = Math.Min(shape[0], start + batch);
            cm.Update(preds.narrow(0, start, end - start), labels.narrow(0, start, end - start));
        }
        var m = SegmentationMetrics.From(cm);
        var expected = c["expected"]!;
        Assert.Equal((long)expected["scored_images"]!, m.Images);
        Assert.Equal((double)expected["mIoU_I"]!, m.MeanIoUPerImage, 12);
        Assert.Equal((double)expected["mIoU_C"]!, m.MeanIoUPerClass, 12);
        foreach (var (q, value) in expected["worst_I"]!.AsObject())
            Assert.Equal((double)value!, m.WorstMeanIoUPerImage(double.Parse(q, System.Globalization.CultureInfo.InvariantCulture)), 12);
        foreach (var (q, value) in expected["worst_C"]!.AsObject())
            Assert.Equal((double)value!, m.WorstMeanIoUPerClass(double.Parse(q, System.Globalization.CultureInfo.InvariantCulture)), 12);
    }

    static double? Round(double? v) => v is null ? null : Math.Round(v.Value, 12);
}

/// <summary>
/// The fine-grained mIoU straight from pixels in plain C# loops: counts per image and class, the official
/// definitions, and worst-case counts in integer arithmetic (n = max(1, percent·count / 100)).
/// </summary>
sealed class FineGrainedOracle
{
    readonly List<double[]> iou = [];        // per scored image: IoU per class (NaN: union empty)
    readonly List<bool[]> active = [];
    readonly bool binary;
    readonly int classes;

    public FineGrainedOracle(IEnumerable<(long[] Labels, long[] Predictions)> images, int classes, long ignore)
    {
        this.classes = classes;
        binary = classes == 2;
        foreach (var (labels, preds) in images)
        {
            if (labels.All(l => l == ignore)) continue;
            var row = new double[classes];
            var on = new bool[classes];
            for (var c = 0; c < classes; c++)
            {
                long inter = 0, union = 0, truth = 0;
                for (var p = 0; p < labels.Length; p++)
                {
                    if (labels[p] == ignore) continue;
                    bool l = labels[p] == c, q = preds[p] == c;
                    if (l && q) inter++;
                    if (l || q) union++;
                    if (l) truth++;
                }
                row[c] = union == 0 ? double.NaN : (double)inter / union;
                on[c] = binary ? union > 0 : truth > 0;
            }
            iou.Add(row);
            active.Add(on);
        }
    }

    public int ScoredImages => iou.Count;

    IEnumerable<double> ImageScores() => iou.Select((row, i) => binary
        ? (double.IsNaN(row[1]) ? 1.0 : row[1])
        : Enumerable.Range(0, classes).Where(c => active[i][c]).Average(c => row[c]));

    public double MeanPerImage(int percent = 100) => LowestMean(ImageScores().ToList(), percent);

    public double MeanPerClass(int percent = 100)
    {
        var perClass = Enumerable.Range(0, classes)
            .Select(c => Enumerable.Range(0, iou.Count).Where(i => active[i][c]).Select(i => iou[i][c]).ToList())
            .Where(l => l.Count > 0).ToList();
        return perClass.Count == 0 ? 0.0 : perClass.Average(l => LowestMean(l, percent));
    }

    public double UnionImageMean() => iou.Count == 0 ? 0.0 : iou.Average(row => row.Where(v => !double.IsNaN(v)).Average());

    static double LowestMean(List<double> values, int percent)
    {
        if (values.Count == 0) return 0.0;
        var n = Math.Max(1, percent * values.Count / 100);
        return values.Order().Take(n).Average();
    }
}
