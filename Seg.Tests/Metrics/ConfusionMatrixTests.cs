using Seg.Core;
using Seg.Core.Metrics;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Tests.Metrics;

public class ConfusionMatrixTests
{
    public ConfusionMatrixTests() => SegRuntime.Initialize();

    // Hand-worked example (C = 3, one 2x4 image, one ignored pixel):
    //   labels  0 0 1 1     predictions 0 1 1 1
    //           2 X 2 0                 2 0 0 0
    // rows = ground truth: [2 1 0; 0 2 0; 1 0 1]
    static Tensor Labels() => tensor(new long[] { 0, 0, 1, 1, 2, 255, 2, 0 }).view(1, 2, 4);
    static Tensor Predictions() => tensor(new long[] { 0, 1, 1, 1, 2, 0, 0, 0 }).view(1, 2, 4);

    [Fact]
    public void CountsMatchHandWorkedExample()
    {
        using var cm = new ConfusionMatrix(3);
        cm.Update(Predictions(), Labels());
        Assert.Equal(new long[,] { { 2, 1, 0 }, { 0, 2, 0 }, { 1, 0, 1 } }, cm.ToArray());
    }

    [Fact]
    public void ScoresMatchHandWorkedExample()
    {
        using var cm = new ConfusionMatrix(3);
        cm.Update(Predictions(), Labels());
        var m = SegmentationMetrics.From(cm, new[] { "a", "b", "c" });

        Assert.Equal(new double?[] { 1.0 / 2, 2.0 / 3, 1.0 / 2 }.Select(Round), m.Classes.Select(c => Round(c.IoU)));
        Assert.Equal(new double?[] { 2.0 / 3, 4.0 / 5, 2.0 / 3 }.Select(Round), m.Classes.Select(c => Round(c.Dice)));
        Assert.Equal(new double?[] { 2.0 / 3, 2.0 / 3, 1.0 }.Select(Round), m.Classes.Select(c => Round(c.Precision)));
        Assert.Equal(new double?[] { 2.0 / 3, 1.0, 1.0 / 2 }.Select(Round), m.Classes.Select(c => Round(c.Recall)));
        Assert.Equal(5.0 / 9, m.MeanIoU, 12);
        Assert.Equal(5.0 / 7, m.PixelAccuracy, 12);
        Assert.Equal(13.0 / 18, m.MeanAccuracy, 12);
        Assert.Equal(32.0 / 45, m.MeanDice, 12);
        Assert.Equal(5.0 / 9, m.MeanIoUPerImageGtOrPredicted, 12); // one image: its mIoU
        Assert.Equal(7, m.LabelledPixels);
        Assert.Equal("b", m.Classes[1].Name);
    }

    [Fact]
    public void ClassWithEmptyUnionIsExcludedFromTheMeansAndShownAsUndefined()
    {
        using var cm = new ConfusionMatrix(4);
        cm.Update(Predictions(), Labels());
        var m = SegmentationMetrics.From(cm);
        Assert.Null(m.Classes[3].IoU);
        Assert.Null(m.Classes[3].Dice);
        Assert.Null(m.Classes[3].Recall);
        Assert.Equal(5.0 / 9, m.MeanIoU, 12);
        Assert.Equal(13.0 / 18, m.MeanAccuracy, 12);
    }

    [Fact]
    public void PredictedButAbsentClassScoresZeroIoU()
    {
        // Class 1 never in the ground truth but predicted once: union 1, IoU 0, counted in the mean.
        using var cm = new ConfusionMatrix(2);
        cm.Update(tensor(new long[] { 0, 1 }), tensor(new long[] { 0, 0 }));
        var m = SegmentationMetrics.From(cm);
        Assert.Equal(0.0, m.Classes[1].IoU);
        Assert.Null(m.Classes[1].Recall);
        Assert.Equal((0.5 + 0.0) / 2, m.MeanIoU, 12);
    }

    [Fact]
    public void ImageMeanIoUAveragesPerImageScoresAcrossUpdates()
    {
        // Image A: labels 0 0 / pred 0 0 -> mIoU 1. Image B: labels 1 1 / pred 1 0 -> IoU0 0, IoU1 1/2 -> 1/4.
        // Image C: all ignored -> does not count. Dataset: [2 0; 1 1] -> IoU 2/3, 1/2.
        using var cm = new ConfusionMatrix(2);
        cm.Update(tensor(new long[] { 0, 0 }).view(1, 1, 2), tensor(new long[] { 0, 0 }).view(1, 1, 2));
        cm.Update(tensor(new long[] { 1, 0, 1, 1 }).view(2, 1, 2), tensor(new long[] { 1, 1, 255, 255 }).view(2, 1, 2));
        var m = SegmentationMetrics.From(cm);
        Assert.Equal(2, cm.ImageCount);
        Assert.Equal((1.0 + 0.25) / 2, m.MeanIoUPerImageGtOrPredicted, 12);
        Assert.Equal((2.0 / 3 + 0.5) / 2, m.MeanIoU, 12);
    }

    [Fact]
    public void ScoresAtDim1AreReducedByArgMax()
    {
        // Logits whose arg-max over dim 1 is the prediction of the hand-worked example.
        var logits = nn.functional.one_hot(Predictions(), 3).permute(0, 3, 1, 2).to(ScalarType.Float32) * 5 - 1;
        using var cm = new ConfusionMatrix(3);
        cm.Update(logits, Labels());
        Assert.Equal(new long[,] { { 2, 1, 0 }, { 0, 2, 0 }, { 1, 0, 1 } }, cm.ToArray());
    }

    [Fact]
    public void MatchesBruteForceCountOnRandomBatches()
    {
        const int c = 5;
        var gen = new Random(7);
        var expected = new long[c, c];
        using var cm = new ConfusionMatrix(c, ignoreIndex: -1);
        for (var batch = 0; batch < 3; batch++)
        {
            var labels = new long[2 * 6 * 7];
            var preds = new long[labels.Length];
            for (var i = 0; i < labels.Length; i++)
            {
                labels[i] = gen.Next(10) == 0 ? -1 : gen.Next(c);
                preds[i] = gen.Next(c);
                if (labels[i] >= 0) expected[labels[i], preds[i]]++;
            }
            cm.Update(tensor(preds).view(2, 6, 7), tensor(labels).view(2, 6, 7));
        }
        Assert.Equal(expected, cm.ToArray());
    }

    [Fact]
    public void ShapeMismatchNamesBothShapes()
    {
        using var cm = new ConfusionMatrix(3);
        var e = Assert.Throws<ArgumentException>(() => cm.Update(zeros(2, 4, 4, dtype: ScalarType.Int64), zeros(2, 4, 5, dtype: ScalarType.Int64)));
        Assert.Contains("[2, 4, 4]", e.Message);
        Assert.Contains("[2, 4, 5]", e.Message);
    }

    [Fact]
    public void OutOfRangeLabelIsRejected()
    {
        using var cm = new ConfusionMatrix(3);
        var e = Assert.Throws<ArgumentException>(() => cm.Update(tensor(new long[] { 0, 1 }), tensor(new long[] { 0, 7 })));
        Assert.Contains("max 7", e.Message);
    }

    [Fact]
    public void MergeAddsCounts()
    {
        using var a = new ConfusionMatrix(3);
        using var b = new ConfusionMatrix(3);
        a.Update(Predictions(), Labels());
        b.Update(Predictions(), Labels());
        a.Merge(b);
        Assert.Equal(new long[,] { { 4, 2, 0 }, { 0, 4, 0 }, { 2, 0, 2 } }, a.ToArray());
        Assert.Equal(2, a.ImageCount);
    }

    static double? Round(double? v) => v is null ? null : Math.Round(v.Value, 12);
}

public class ConfusionMatrixScopeTests
{
    public ConfusionMatrixScopeTests() => SegRuntime.Initialize();

    [Fact]
    public void StateSurvivesTheCallersDisposeScope()
    {
        // Callers update inside their own per-batch scope; the accumulated counts must outlive it.
        using var cm = new ConfusionMatrix(2);
        for (var i = 0; i < 2; i++)
        {
            using var scope = NewDisposeScope();
            cm.Update(tensor(new long[] { 0, 1 }), tensor(new long[] { 0, 1 }));
        }
        Assert.Equal(new long[,] { { 2, 0 }, { 0, 2 } }, cm.ToArray());
        Assert.Equal(1.0, SegmentationMetrics.From(cm).MeanIoUPerImageGtOrPredicted, 12);
    }
}
