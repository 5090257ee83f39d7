using Seg.Core;
using Seg.Core.Losses;
using Seg.Core.Losses.MarginSoftmax;
using static Seg.Tests.SoftmaxFamily.Oracle;
using static TorchSharp.torch;

namespace Seg.Tests.SoftmaxFamily;

public class CosineMarginTests
{
    public CosineMarginTests() => SegRuntime.Initialize();

    // Cosines chosen so that the ArcFace target covers every branch for m = 0.5 (cos(π − m) ≈ −0.8776):
    // θ_y + m < π with cos > 0, θ_y + m < π with cos < 0, and θ_y + m > π (cos θ_y = −0.95).
    static readonly double[][] Cosines =
    [
        [0.80, -0.10, 0.30],
        [0.20, -0.40, 0.60],
        [-0.30, 0.50, -0.20],
        [-0.95, 0.40, 0.10],
        [0.10, 0.20, 0.30],
    ];
    static readonly long[] Targets = [0, 2, 0, 0, 255];
    const double S = 10, M = 0.5;

    static double[] Expected(Func<double, double> target)
    {
        var expected = new List<double>();
        for (var i = 0; i < Cosines.Length; i++)
            for (var j = 0; j < 3; j++)
                expected.Add(S * (j == Targets[i] ? target(Cosines[i][j]) : Cosines[i][j]));
        return expected.ToArray();
    }

    static Tensor Scaled() => T(Cosines) * S;

    [Fact]
    public void AmSubtractsTheMarginFromTheTargetCosineOnly()
    {
        using var logits = CosineMargin.Apply(Scaled(), Labels(Targets), MarginKind.Am, S, 0.35);
        Close(Expected(c => c - 0.35), Values(logits));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ArcFaceAddsTheAngleWithTheFallbackPastPi(bool easy)
    {
        using var logits = CosineMargin.Apply(Scaled(), Labels(Targets), MarginKind.ArcFace, S, M, easy);
        Close(Expected(c => ArcFaceCos(c, M, easy)), Values(logits));
    }

    [Fact]
    public void ArcFaceFallbackPastPiIsCosMinusMTimesSinM()
    {
        // Sample 3: θ_y = acos(−0.95) ≈ 2.82 rad, θ_y + 0.5 > π: the insightface value, by hand −0.95 − 0.5·sin 0.5.
        using var logits = CosineMargin.Apply(Scaled(), Labels(Targets), MarginKind.ArcFace, S, M);
        Close(S * (-0.95 - 0.5 * 0.479425538604203), Values(logits)[9]);
        using var easy = CosineMargin.Apply(Scaled(), Labels(Targets), MarginKind.ArcFace, S, M, easyMargin: true);
        Close(S * -0.95, Values(easy)[9]);
    }

    [Fact]
    public void NoneLeavesLogitsUnchanged()
    {
        using var logits = CosineMargin.Apply(Scaled(), Labels(Targets), MarginKind.None, S, M);
        Close(Expected(c => c), Values(logits));
    }

    [Fact]
    public void PixelLayoutMatchesRowLayoutAndSkipsIgnoredPixels()
    {
        // The five rows as a [1,3,1,5] image: class dimension 1, pixels along W.
        using var pixels = Scaled().t().reshape(1, 3, 1, 5);
        using var labels = Labels(Targets).reshape(1, 1, 5);
        using var logits = CosineMargin.Apply(pixels, labels, MarginKind.ArcFace, S, M);
        using var rows = logits.reshape(3, 5).t().contiguous();
        Close(Expected(c => ArcFaceCos(c, M, false)), Values(rows));
    }

    [Fact]
    public void UpsampledLogitsBeyondScaleAreClampedBeforeTheAngle()
    {
        // A logit of exactly s (cos = 1) and one a hair above: θ = 0, target s·cos m, finite gradients. The sine is
        // floored at 1e-6 (sin² at 1e-12) to keep sqrt's derivative finite, so the value is within s·1e-6 there.
        using var logits = tensor(new[] { S, 0.0, S * (1 + 1e-12), 0.0 }, [2, 2], dtype: ScalarType.Float64).requires_grad_();
        using var result = CosineMargin.Apply(logits, Labels(0, 0), MarginKind.ArcFace, S, M);
        Close([S * Math.Cos(M), 0, S * Math.Cos(M), 0], Values(result), 1e-6);
        result.sum().backward();
        Assert.True(Values(logits.grad!).All(double.IsFinite));
    }

    [Fact]
    public void GradientsMatchFiniteDifferences()
    {
        using var leaf = (T(Cosines) * S).requires_grad_();
        using var weights = T([[0.3, -1.2, 0.7], [1.1, 0.4, -0.5], [0.2, 0.9, 1.3], [-0.6, 0.1, 0.8], [0.5, 0.5, 0.5]]);
        foreach (var kind in new[] { MarginKind.Am, MarginKind.ArcFace })
            foreach (var easy in new[] { false, true })
                FiniteDifferences.Check(
                    () => (CosineMargin.Apply(leaf, Labels(Targets), kind, S, M, easy) * weights).sum(), leaf);
    }

    [Fact]
    public void LabelShapeAndRangeErrorsNameTheShapes()
    {
        var shape = Assert.Throws<ArgumentException>(() => CosineMargin.Apply(Scaled(), Labels(0, 1), MarginKind.Am, S, M));
        Assert.Contains("labels must be [5]", shape.Message);
        Assert.Contains("[5,3]", shape.Message);
        var range = Assert.Throws<ArgumentException>(
            () => CosineMargin.Apply(Scaled(), Labels(0, 1, 2, 3, 0), MarginKind.Am, S, M));
        Assert.Contains("label 3", range.Message);
        var type = Assert.Throws<ArgumentException>(
            () => CosineMargin.Apply(Scaled(), zeros(5), MarginKind.Am, S, M));
        Assert.Contains("integer", type.Message);
    }
}
