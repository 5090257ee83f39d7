using Seg.Core;
using Seg.Core.Losses;
using Seg.Core.Losses.MarginSoftmax;
using static Seg.Tests.SoftmaxFamily.Oracle;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Tests.SoftmaxFamily;

public class CenterLossTests
{
    public CenterLossTests() => SegRuntime.Initialize();

    static CenterLoss Create(double alpha = 0.5)
    {
        var loss = new CenterLoss(2, 3, alpha);
        loss.to(ScalarType.Float64);
        using (no_grad()) loss.centers.copy_(T([[0, 0], [1, 1], [2, 0]]));
        return loss;
    }

    [Fact]
    public void LossIsHalfTheMeanSquaredDistanceToTheCenter()
    {
        // ‖(1,0) − (0,0)‖² = 1, ‖(3,0) − (0,0)‖² = 9, ‖(1,3) − (1,1)‖² = 4: ½·(1 + 9 + 4)/3 = 7/3; the ignored row adds nothing.
        using var loss = Create();
        using var value = loss.forward(T([[1, 0], [3, 0], [1, 3], [50, 50]]), Labels(0, 0, 1, 255));
        Close(7.0 / 3, value.item<double>());
    }

    [Fact]
    public void UpdateFollowsThePaperRuleByHand()
    {
        // Class 0: Δc = ((0,0) − (1,0) + (0,0) − (3,0)) / (1 + 2) = (−4/3, 0), c ← c − 0.5·Δc = (2/3, 0).
        // Class 1: Δc = ((1,1) − (1,3)) / 2 = (0, −1), c ← (1, 1.5). Class 2 is absent and stays at (2, 0).
        using var loss = Create();
        loss.UpdateCenters(T([[1, 0], [3, 0], [1, 3], [50, 50]]), Labels(0, 0, 1, 255));
        Close([2.0 / 3, 0, 1, 1.5, 2, 0], Values(loss.centers));
    }

    [Fact]
    public void CentersAreNotTrainedByTheOptimizerUnlessAsked()
    {
        using var loss = new CenterLoss(4, 3);
        Assert.False(loss.centers.requires_grad);
        Assert.Equal(ScalarType.Float32, loss.centers.dtype);
        Assert.Equal([3L, 4], loss.centers.shape);
        using var x = randn(5, 4, requires_grad: true);
        loss.forward(x, Labels(0, 1, 2, 0, 1)).backward();
        Assert.NotNull(x.grad);
        Assert.Null(loss.centers.grad);
    }

    [Fact]
    public void GradientsMatchFiniteDifferences()
    {
        using var loss = Create();
        using var x = T([[1, 0.5], [3, -1], [1, 3]]).requires_grad_();
        FiniteDifferences.Check(() => loss.forward(x, Labels(0, 2, 1)), x);
    }

    [Fact]
    public void PixelEmbeddingsExcludeIgnoredPixels()
    {
        // The same four rows as a [1,2,2,2] image with the 255 pixel holding a far-away embedding.
        using var loss = Create();
        using var pixels = T([[1, 0], [3, 0], [1, 3], [50, 50]]).t().reshape(1, 2, 2, 2).contiguous();
        using var labels = Labels(0, 0, 1, 255).reshape(1, 2, 2);
        using var value = loss.forward(pixels, labels);
        Close(7.0 / 3, value.item<double>());
        loss.UpdateCenters(pixels, labels);
        Close([2.0 / 3, 0, 1, 1.5, 2, 0], Values(loss.centers));
    }

    [Fact]
    public void SamplerDownsamplesLabelsWithNearestAndDropsIgnored()
    {
        // Labels 4×4 → embedding 2×2 takes rows/cols 0 and 2: labels 0, 255 (dropped), 2, 1.
        using var labels = tensor(new long[] { 0, 9, 255, 9, 9, 9, 9, 9, 2, 9, 1, 9, 9, 9, 9, 9 }, [1, 4, 4]);
        using var embedding = arange(8, dtype: ScalarType.Float64).reshape(1, 2, 2, 2);
        var (rows, y) = PixelEmbeddingSampler.Sample(embedding, labels, 100);
        Assert.Equal([0L, 2, 1], y.data<long>().ToArray());
        Close([0, 4, 2, 6, 3, 7], Values(rows));
        var (few, fewLabels) = PixelEmbeddingSampler.Sample(embedding, labels, 2);
        Assert.Equal([2L, 2], few.shape);
        Assert.Equal(2, fewLabels.shape[0]);
    }

    [Fact]
    public void AllIgnoredGivesZeroAndLeavesCentersAlone()
    {
        using var loss = Create();
        using var value = loss.forward(T([[1, 0]]), Labels(255));
        Assert.Equal(0.0, value.item<double>());
        loss.UpdateCenters(T([[1, 0]]), Labels(255));
        Close([0, 0, 1, 1, 2, 0], Values(loss.centers));
    }

    [Fact]
    public void ShapeErrorsNameTheTensors()
    {
        using var loss = new CenterLoss(2, 3);
        var features = Assert.Throws<ArgumentException>(() => loss.forward(zeros(3, 5), Labels(0, 1, 2)));
        Assert.Contains("[N,2]", features.Message);
        var labels = Assert.Throws<ArgumentException>(() => loss.forward(zeros(1, 2, 4, 4), Labels(0, 1, 2)));
        Assert.Contains("[1,4,4]", labels.Message);
        var sampler = Assert.Throws<ArgumentException>(() => PixelEmbeddingSampler.Sample(zeros(2, 3), Labels(0, 1), 4));
        Assert.Contains("[B,D,h,w]", sampler.Message);
    }
}
