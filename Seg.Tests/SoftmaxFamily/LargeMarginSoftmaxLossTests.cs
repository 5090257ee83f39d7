using Seg.Core;
using Seg.Core.Losses;
using Seg.Core.Losses.MarginSoftmax;
using static Seg.Tests.SoftmaxFamily.Oracle;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Tests.SoftmaxFamily;

public class LargeMarginSoftmaxLossTests
{
    public LargeMarginSoftmaxLossTests() => SegRuntime.Initialize();

    [Theory]
    [InlineData(4, 0.3)]   // k = 0
    [InlineData(4, 1.0)]   // k = 1
    [InlineData(4, 1.8)]   // k = 2
    [InlineData(4, 2.7)]   // k = 3
    [InlineData(3, 0.5)]
    [InlineData(3, 1.5)]
    [InlineData(3, 2.5)]
    [InlineData(2, 0.9)]
    [InlineData(2, 2.2)]
    [InlineData(1, 2.0)]
    public void PsiMatchesTheDefinitionInEveryBranch(int m, double theta)
    {
        using var psi = LargeMarginSoftmaxLoss.Psi(tensor(new[] { Math.Cos(theta) }, dtype: ScalarType.Float64), m);
        Close(Psi(theta, m), psi.item<double>());
    }

    [Fact]
    public void PsiBranchesByHandForMarginFour()
    {
        // ψ(θ) = (−1)^k cos 4θ − 2k; at θ = 3π/8 (k = 1): −cos(3π/2) − 2 = −2; at θ = 5π/8 (k = 2): cos(5π/2) − 4 = −4.
        using var psi = LargeMarginSoftmaxLoss.Psi(
            tensor(new[] { 1.0, Math.Cos(3 * Math.PI / 8), Math.Cos(5 * Math.PI / 8), -1.0 }, dtype: ScalarType.Float64), 4);
        Close([1, -2, -4, -7], Values(psi), 1e-12);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(6)]
    public void PsiDecreasesMonotonicallyOnZeroToPi(int m)
    {
        var thetas = Enumerable.Range(0, 2001).Select(i => Math.PI * i / 2000).ToArray();
        using var psi = LargeMarginSoftmaxLoss.Psi(tensor(thetas.Select(Math.Cos).ToArray(), dtype: ScalarType.Float64), m);
        var values = Values(psi);
        for (var i = 1; i < values.Length; i++)
            Assert.True(values[i] < values[i - 1], $"ψ does not decrease between θ = {thetas[i - 1]} and {thetas[i]}");
        Close(1 - 2 * m, values[^1], 1e-9);
    }

    // 2-D embeddings at angles that put θ_y in each branch of ψ for m = 4 (target class 0 along the x axis).
    static readonly double[] Angles = [0.3, 1.0, 1.8, 2.7];
    static readonly double[] Radii = [1.5, 0.7, 2.0, 1.1];
    static readonly double[][] W = [[1.3, 0.0], [-0.4, 0.9], [0.2, -1.1]];

    static double[][] Embeddings() =>
        Angles.Select((a, i) => new[] { Radii[i] * Math.Cos(a), Radii[i] * Math.Sin(a) }).ToArray();

    static LargeMarginSoftmaxLoss Create(int m, double lambda)
    {
        var loss = new LargeMarginSoftmaxLoss(2, 3, m) { Lambda = lambda };
        loss.to(ScalarType.Float64);
        using (no_grad()) loss.weight.copy_(T(W));
        return loss;
    }

    static double[] OracleLogits(double[] x, long y, int m, double lambda) =>
        W.Select((w, j) =>
        {
            var f = Dot(w, x);
            if (j != y) return f;
            var product = Norm(w) * Norm(x);
            return (lambda * f + product * Psi(Math.Acos(Cos(w, x)), m)) / (1 + lambda);
        }).ToArray();

    [Theory]
    [InlineData(4, 0.0)]
    [InlineData(4, 2.5)]
    [InlineData(2, 0.0)]
    [InlineData(3, 1.0)]
    public void LogitsAndLossMatchThePaperFormula(int m, double lambda)
    {
        using var loss = Create(m, lambda);
        var x = Embeddings();
        using var logits = loss.Logits(T(x), Labels(0, 0, 0, 0));
        Close(x.SelectMany(e => OracleLogits(e, 0, m, lambda)).ToArray(), Values(logits));
        long[] y = [0, 1, 0, 2];
        using var value = loss.forward(T(x), Labels(y));
        Close(x.Select((e, i) => CrossEntropy(OracleLogits(e, y[i], m, lambda), y[i])).Average(), value.item<double>());
    }

    [Fact]
    public void MarginOneIsPlainSoftmaxWithoutBias()
    {
        using var loss = Create(1, 0);
        var x = Embeddings();
        using var logits = loss.Logits(T(x), Labels(0, 1, 2, 0));
        Close(x.SelectMany(e => W.Select(w => Dot(w, e))).ToArray(), Values(logits));
    }

    [Fact]
    public void GradientsMatchFiniteDifferences()
    {
        using var loss = Create(4, 0.5);
        using var x = T(Embeddings()).requires_grad_();
        FiniteDifferences.Check(() => loss.forward(x, Labels(0, 0, 1, 0)), x, loss.weight);
    }

    [Fact]
    public void AnnealingFollowsTheOfficialScheduleDuringTrainingOnly()
    {
        var schedule = new LargeMarginAnnealing();
        Assert.Equal(1000, schedule.LambdaAt(0));
        Close(1000 * Math.Pow(1.025, -35), schedule.LambdaAt(1000));
        Close(1000 / Math.Pow(2, 35), schedule.LambdaAt(40000));
        Assert.Equal(5, (schedule with { LambdaMin = 5 }).LambdaAt(40000));

        using var loss = Create(4, 0);
        loss.Annealing = schedule with { Gamma = 1, Power = 1 };
        using var x = T(Embeddings());
        loss.forward(x, Labels(0, 0, 0, 0)).Dispose();
        Assert.Equal(1000, loss.Lambda);
        loss.forward(x, Labels(0, 0, 0, 0)).Dispose();
        Assert.Equal(500, loss.Lambda);
        Assert.Equal(2, loss.Iteration);
        loss.eval();
        loss.forward(x, Labels(0, 0, 0, 0)).Dispose();
        Assert.Equal(2, loss.Iteration);
    }

    [Fact]
    public void PixelEmbeddingsExcludeIgnoredPixels()
    {
        using var loss = Create(4, 0.5);
        var x = Embeddings();
        long[] y = [0, 255, 1, 0];
        using var pixels = T(x).t().reshape(1, 2, 2, 2).contiguous();
        using var value = loss.forward(pixels, Labels(y).reshape(1, 2, 2));
        var expected = new[] { 0, 2, 3 }.Select(i => CrossEntropy(OracleLogits(x[i], y[i], 4, 0.5), y[i])).Average();
        Close(expected, value.item<double>());
    }

    [Fact]
    public void BadArgumentsAreClearErrors()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new LargeMarginSoftmaxLoss(2, 3, 0));
        using var loss = new LargeMarginSoftmaxLoss(2, 3);
        Assert.Throws<ArgumentOutOfRangeException>(() => loss.Lambda = -1);
        var error = Assert.Throws<ArgumentException>(() => loss.forward(zeros(4, 3), Labels(0, 0, 0, 0)));
        Assert.Contains("[N,2]", error.Message);
        Assert.Contains("[4,3]", error.Message);
    }
}
