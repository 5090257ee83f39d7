using Seg.Core;
using Seg.Core.Losses;
using Seg.Core.Losses.MarginSoftmax;
using static Seg.Tests.SoftmaxFamily.Oracle;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Tests.SoftmaxFamily;

/// <summary>AmSoftmaxLoss and ArcFaceLoss against the papers' formulas, on embeddings and pixel embeddings.</summary>
public class CosineMarginLossTests
{
    public CosineMarginLossTests() => SegRuntime.Initialize();

    static readonly double[][] X =
    [
        [1.0, 0.5, -0.2],
        [-0.3, 2.0, 0.4],
        [0.7, -0.8, 1.5],
        [-1.0, -0.2, -0.6],
    ];
    static readonly double[][] W =
    [
        [0.9, 0.1, 0.0],
        [0.0, 1.2, 0.3],
        [0.2, -0.4, 1.1],
    ];
    // Sample 3 points away from its class 0 (cos θ_y ≈ −0.86), so with a large margin θ_y + m passes π.
    static readonly long[] Y = [0, 1, 2, 0];

    static CosineMarginSoftmax Create(string name, double scale, double margin, bool easy = false)
    {
        CosineMarginSoftmax loss = name == "am"
            ? new AmSoftmaxLoss(3, 3, scale, margin)
            : new ArcFaceLoss(3, 3, scale, margin, easy);
        loss.to(ScalarType.Float64);
        using (no_grad()) loss.weight.copy_(T(W));
        return loss;
    }

    static double OracleLoss(string name, double scale, double margin, bool easy, long[] labels)
    {
        var total = 0.0;
        var count = 0;
        for (var i = 0; i < X.Length; i++)
        {
            if (labels[i] == 255) continue;
            var logits = W.Select((w, j) =>
            {
                var c = Cos(X[i], w);
                if (j != labels[i]) return scale * c;
                return scale * (name == "am" ? c - margin : ArcFaceCos(c, margin, easy));
            }).ToArray();
            total += CrossEntropy(logits, labels[i]);
            count++;
        }
        return total / count;
    }

    [Theory]
    [InlineData("am", 30, 0.35, false)]
    [InlineData("am", 4, 0.2, false)]
    [InlineData("arcface", 64, 0.5, false)]
    [InlineData("arcface", 4, 0.5, true)]
    [InlineData("arcface", 4, 1.2, false)]
    [InlineData("arcface", 4, 1.2, true)]
    public void LossMatchesThePaperFormula(string name, double scale, double margin, bool easy)
    {
        using var loss = Create(name, scale, margin, easy);
        using var value = loss.forward(T(X), Labels(Y));
        Close(OracleLoss(name, scale, margin, easy, Y), value.item<double>());
    }

    [Fact]
    public void TheLargeMarginCaseReallyPassesPi()
    {
        // Guards the theory data above: sample 3 must take the θ_y + m > π branch for m = 1.2.
        var theta = Math.Acos(Cos(X[3], W[0]));
        Assert.True(theta + 1.2 > Math.PI, $"θ_y = {theta}");
        Assert.True(theta + 0.5 < Math.PI, $"θ_y = {theta}");
    }

    [Theory]
    [InlineData("am")]
    [InlineData("arcface")]
    public void LogitsWithoutLabelsArePlainScaledCosines(string name)
    {
        using var loss = Create(name, 7, 0.3);
        using var logits = loss.Logits(T(X), null);
        Close(X.SelectMany(x => W.Select(w => 7 * Cos(x, w))).ToArray(), Values(logits));
    }

    [Theory]
    [InlineData("am", false)]
    [InlineData("arcface", false)]
    [InlineData("arcface", true)]
    public void GradientsMatchFiniteDifferences(string name, bool easy)
    {
        using var loss = Create(name, 5, 0.4, easy);
        using var x = T(X).requires_grad_();
        FiniteDifferences.Check(() => loss.forward(x, Labels(Y)), x, loss.weight);
    }

    [Theory]
    [InlineData("am")]
    [InlineData("arcface")]
    public void PixelEmbeddingsExcludeIgnoredPixels(string name)
    {
        // X as a [1,3,2,2] image; pixel 1 is ignored: the loss is the mean over the other three, and changing the
        // ignored pixel's embedding changes nothing and gets no gradient.
        long[] labels = [0, 255, 2, 0];
        using var loss = Create(name, 6, 0.3);
        using var pixels = T(X).t().reshape(1, 3, 2, 2).contiguous().requires_grad_();
        using var y = Labels(labels).reshape(1, 2, 2);
        using var value = loss.forward(pixels, y);
        Close(OracleLoss(name, 6, 0.3, false, labels), value.item<double>());
        value.backward();
        Close([0, 0, 0], Values(pixels.grad!.reshape(3, 4).select(1, 1)));
        using var logits = loss.Logits(pixels, y);
        Assert.Equal([1L, 3, 2, 2], logits.shape);
    }

    [Fact]
    public void AllIgnoredGivesZeroNotNaN()
    {
        using var loss = Create("arcface", 6, 0.3);
        using var value = loss.forward(T(X), Labels(255, 255, 255, 255));
        Assert.Equal(0.0, value.item<double>());
    }

    [Fact]
    public void ParametersAreFloat32UntilConverted()
    {
        using var am = new AmSoftmaxLoss(8, 5);
        Assert.Equal(ScalarType.Float32, am.weight.dtype);
        Assert.Equal([5L, 8], am.weight.shape);
        using var x = randn(4, 8);
        using var value = am.forward(x, Labels(0, 1, 2, 4));
        Assert.True(double.IsFinite(value.item<float>()));
        am.to(ScalarType.Float64);
        Assert.Equal(ScalarType.Float64, am.weight.dtype);
        Assert.Single(am.parameters());
        var error = Assert.Throws<ArgumentException>(() => am.forward(x, Labels(0, 1, 2, 4)));
        Assert.Contains("Float32", error.Message);
    }

    [Fact]
    public void WrongFeatureShapeIsAClearError()
    {
        using var loss = new ArcFaceLoss(3, 4);
        var error = Assert.Throws<ArgumentException>(() => loss.forward(zeros(2, 5), Labels(0, 1)));
        Assert.Contains("ArcFaceLoss", error.Message);
        Assert.Contains("[N,3]", error.Message);
        Assert.Contains("[2,5]", error.Message);
        var labels = Assert.Throws<ArgumentException>(() => loss.forward(zeros(1, 3, 2, 2), Labels(0, 1)));
        Assert.Contains("[1,2,2]", labels.Message);
    }

    [Fact]
    public void ScaledCosineOfPixelEmbeddingsMatchesTheFormula()
    {
        // X's four rows as the pixels of a [1,3,2,2] map, plus a zero pixel in a second image: s·cos θ per pixel
        // and class, and 0 (not NaN) for the zero vector, as F.normalize's clamped norm gives.
        using var scope = NewDisposeScope();
        var pixels = cat([T(X).t().reshape(1, 3, 2, 2), zeros(1, 3, 2, 2, dtype: ScalarType.Float64)], 0);
        var logits = Values(CosineMargin.ScaledCosine(pixels, T(W), 5));
        for (var p = 0; p < 4; p++)
            for (var c = 0; c < 3; c++)
            {
                Close(5 * Cos(X[p], W[c]), logits[c * 4 + p]);
                Assert.Equal(0.0, logits[12 + c * 4 + p]);
            }
    }

    [Fact]
    public void ScaledCosineNamesBadShapes()
    {
        using var scope = NewDisposeScope();
        var threeDims = Assert.Throws<ArgumentException>(() => CosineMargin.ScaledCosine(zeros(2, 3, 4), T(W), 1));
        Assert.Contains("[2,3,4]", threeDims.Message);
        var otherD = Assert.Throws<ArgumentException>(() => CosineMargin.ScaledCosine(zeros(2, 4, 5, 5), T(W), 1));
        Assert.Contains("[2,4,5,5]", otherD.Message);
        Assert.Contains("[3,3]", otherD.Message);
    }
}
