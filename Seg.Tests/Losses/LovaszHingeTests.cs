using Seg.Core.Losses;
using Seg.Core.Losses.LovaszLosses;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Tests.Losses;

public class LovaszHingeTests
{
    public LovaszHingeTests() => TensorData.Init();

    [Theory]
    [InlineData(new[] { 2.0, -1.0, 0.5, -0.5 }, 1.0)]
    [InlineData(new[] { 1.0, -1.0, 1.0, -1.0 }, 4.0 / 3)]
    public void PublishedVectors(double[] logits, double expected)
    {
        using var scope = NewDisposeScope();
        var labels = tensor(new long[] { 1, 0, 0, 1 }).view(1, 2, 2);
        foreach (var dtype in new[] { ScalarType.Float64, ScalarType.Float32 })
        {
            var x = tensor(logits, dtype: dtype).view(1, 2, 2);
            Assert.Equal(expected, Lovasz.Hinge(x, labels).to(ScalarType.Float64).item<double>(), 6);
            Assert.Equal(expected, Lovasz.Hinge(x, labels, perImage: false).to(ScalarType.Float64).item<double>(), 6);
        }
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void MatchesBruteForceOracle(bool perImage, bool ignore)
    {
        var random = new Random((perImage ? 2 : 0) + (ignore ? 1 : 0));
        for (int trial = 0; trial < 4; trial++)
        {
            using var scope = NewDisposeScope();
            var scores = Enumerable.Range(0, 3).Select(_ => Enumerable.Range(0, 12).Select(_ => random.NextDouble() * 4 - 2).ToArray()).ToArray();
            var labels = TensorData.RandomLabels(random, 3, 12, 2, ignore ? 0.25 : 0);
            if (ignore && trial == 3) labels[2] = Enumerable.Repeat(255L, 12).ToArray();
            long? ignoreIndex = ignore ? 255 : null;
            var x = tensor(scores.SelectMany(s => s).ToArray(), dtype: ScalarType.Float64).view(3, 3, 4);
            Assert.Equal(LovaszOracle.Hinge(scores, labels, perImage, ignoreIndex),
                         Lovasz.Hinge(x, TensorData.Labels(labels, 4), perImage, ignoreIndex).item<double>(), 10);
        }
    }

    [Fact]
    public void GradientMatchesFiniteDifferencesOfOracle()
    {
        using var scope = NewDisposeScope();
        var random = new Random(21);
        var scores = Enumerable.Range(0, 2).Select(_ => Enumerable.Range(0, 6).Select(_ => random.NextDouble() * 3 - 1.5).ToArray()).ToArray();
        var labels = TensorData.RandomLabels(random, 2, 6, 2);
        var x = tensor(scores.SelectMany(s => s).ToArray(), dtype: ScalarType.Float64).view(2, 2, 3).requires_grad_(true);
        Lovasz.Hinge(x, TensorData.Labels(labels, 3)).backward();
        var grad = TensorData.Values(x.grad!);
        const double h = 1e-6;
        for (int i = 0; i < 12; i++)
        {
            double Shifted(double d)
            {
                var s = scores.Select(r => (double[])r.Clone()).ToArray();
                s[i / 6][i % 6] += d;
                return LovaszOracle.Hinge(s, labels, true, null);
            }
            Assert.Equal((Shifted(h) - Shifted(-h)) / (2 * h), grad[i], 6);
        }
    }

    [Fact]
    public void AllIgnoredGivesZeroWithZeroGradient()
    {
        using var scope = NewDisposeScope();
        var x = randn(2, 3, 3).requires_grad_(true);
        foreach (var perImage in new[] { false, true })
        {
            x.grad?.zero_();
            var loss = Lovasz.Hinge(x, full(2, 3, 3, 255L), perImage, 255);
            Assert.Equal(0.0f, loss.item<float>());
            loss.backward();
            Assert.Equal(0.0f, x.grad!.abs().sum().item<float>());
        }
    }

    [Fact]
    public void ModuleAcceptsChannelAndFlatForms()
    {
        using var scope = NewDisposeScope();
        var x = randn(2, 1, 3, 4, dtype: ScalarType.Float64);
        var y = randint(0, 2, [2, 3, 4]);
        var loss = new LovaszHingeLoss(perImage: false);
        double expected = Lovasz.Hinge(x.squeeze(1), y, perImage: false).item<double>();
        Assert.Equal(expected, loss.call(x, y).item<double>(), 12);
        Assert.Equal(expected, loss.call(x.flatten(), y.flatten()).item<double>(), 12);
        Assert.Contains("labels [2,3,4] do not match logits [2,2,3,4]",
            Assert.Throws<ArgumentException>(() => loss.call(randn(2, 2, 3, 4), y)).Message);
        Assert.Contains("hold 2", Assert.Throws<ArgumentException>(() => loss.call(x, y + 1)).Message);
    }
}
