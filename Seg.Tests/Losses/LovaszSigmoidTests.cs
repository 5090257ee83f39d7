using Seg.Core.Losses;
using Seg.Core.Losses.LovaszLosses;
using TorchSharp;
using static TorchSharp.torch;
using Sel = Seg.Tests.Losses.LovaszOracle.Selection;

namespace Seg.Tests.Losses;

/// <summary>The multi-label Lovász loss against per-channel Lovász-Softmax on foreground probabilities and the
/// brute-force oracle.</summary>
public class LovaszSigmoidTests
{
    public LovaszSigmoidTests() => TensorData.Init();

    const int B = 3, C = 4, H = 3, W = 4, P = H * W;

    /// <summary>Foreground probabilities [B][C][P] and targets [B][C][P] in {0,1,255}; channel 2 is ignored in all
    /// of image 1, channel 3 everywhere, so that both the per-image and per-channel means meet an empty set.</summary>
    static (double[][][] Probas, long[][][] Targets) Case(int seed)
    {
        var random = new Random(seed);
        var probas = Enumerable.Range(0, B).Select(_ => Enumerable.Range(0, C)
            .Select(_ => Enumerable.Range(0, P).Select(_ => random.NextDouble()).ToArray()).ToArray()).ToArray();
        var targets = Enumerable.Range(0, B).Select(b => Enumerable.Range(0, C).Select(c => Enumerable.Range(0, P)
            .Select(_ => (b == 1 && c == 2) || c == 3 || random.NextDouble() < 0.2 ? 255L : random.Next(2)).ToArray()).ToArray()).ToArray();
        return (probas, targets);
    }

    static Tensor Targets(long[][][] t) => tensor(t.SelectMany(x => x.SelectMany(y => y)).ToArray()).reshape(B, C, H, W);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void MatchesOracleChannelByChannel(bool perImage)
    {
        var (probas, targets) = Case(1);
        double expected = Enumerable.Range(0, C).Average(c =>
        {
            var twoClass = probas.Select(img => new[] { img[c].Select(v => 1 - v).ToArray(), img[c] }).ToArray();
            return LovaszOracle.Softmax(twoClass, targets.Select(img => img[c]).ToArray(), Sel.Only, [1], perImage, 255);
        });
        var p = TensorData.Probas(probas, W);
        Assert.Equal(expected, Lovasz.Sigmoid(p, Targets(targets), perImage, ignoreIndex: 255).item<double>(), 10);
    }

    [Theory]
    [InlineData(false, ScalarType.Float64)]
    [InlineData(true, ScalarType.Float64)]
    [InlineData(false, ScalarType.Float32)]
    [InlineData(true, ScalarType.Float32)]
    public void EqualsMeanOfPerChannelSoftmaxWithItsGradient(bool perImage, ScalarType dtype)
    {
        var (probas, targets) = Case(2);
        var t = Targets(targets);
        var batched = TensorData.Probas(probas, W, dtype).requires_grad_(true);
        var loop = TensorData.Probas(probas, W, dtype).requires_grad_(true);
        var value = Lovasz.Sigmoid(batched, t, perImage, 255);
        var reference = stack(Enumerable.Range(0, C).Select(c =>
            Lovasz.Softmax(loop.select(1, c), t.select(1, c), ClassSelection.Only(1), perImage, 255)).ToArray()).mean();
        Assert.Equal(dtype, value.dtype);
        double tolerance = dtype == ScalarType.Float64 ? 1e-12 : 1e-5;
        Assert.Equal(reference.to(ScalarType.Float64).item<double>(), value.to(ScalarType.Float64).item<double>(), tolerance);
        value.backward();
        reference.backward();
        var g = TensorData.Values(batched.grad!);
        var r = TensorData.Values(loop.grad!);
        for (int i = 0; i < g.Length; i++) Assert.Equal(r[i], g[i], tolerance);
    }

    [Fact]
    public void AllIgnoredGivesZeroWithZeroGradient()
    {
        var p = rand(2, 3, 2, 2, dtype: ScalarType.Float64).requires_grad_(true);
        foreach (var perImage in new[] { false, true })
        {
            p.grad?.zero_();
            var value = Lovasz.Sigmoid(p, full(2, 3, 2, 2, 255L), perImage, 255);
            Assert.Equal(0.0, value.item<double>());
            value.backward();
            Assert.All(TensorData.Values(p.grad!), g => Assert.Equal(0.0, g));
        }
    }

    [Fact]
    public void ModuleTakesMultiLabelTargetsOrClassIds()
    {
        var random = new Random(3);
        var logits = randn(2, 3, 4, 4, dtype: ScalarType.Float64);
        var ids = TensorData.Labels(TensorData.RandomLabels(random, 2, 16, 3, ignoredShare: 0.2), 4);
        // One-vs-rest targets written out: channel c is 1 where the label is c, 255 where it is ignored.
        var oneVsRest = stack(Enumerable.Range(0, 3).Select(c => where(ids.eq(255), 255L, ids.eq(c).to(ScalarType.Int64))).ToArray(), 1);
        foreach (var perImage in new[] { false, true })
        {
            var loss = new LovaszSigmoidLoss(perImage);
            double expected = Lovasz.Sigmoid(logits.sigmoid(), oneVsRest, perImage, 255).item<double>();
            Assert.Equal(expected, loss.call(logits, oneVsRest).item<double>(), 12);
            Assert.Equal(expected, loss.call(logits, ids).item<double>(), 12);
        }
        // [N,C] logits with [N] class ids are one image of N pixels.
        var flat = logits[0].reshape(3, 16).t();
        Assert.Equal(new LovaszSigmoidLoss().call(logits[..1], ids[..1]).item<double>(),
                     new LovaszSigmoidLoss().call(flat, ids[0].flatten()).item<double>(), 12);
    }

    [Fact]
    public void BadInputsGiveClearErrors()
    {
        var p = rand(2, 3, 4, 4);
        var e = Assert.Throws<ArgumentException>(() => Lovasz.Sigmoid(p, zeros(2, 3, 4, 5, ScalarType.Int64)));
        Assert.Contains("[2,3,4,5]", e.Message);
        Assert.Contains("[2,3,4,4]", e.Message);
        e = Assert.Throws<ArgumentException>(() => Lovasz.Sigmoid(p, full(2, 3, 4, 4, 2L), ignoreIndex: 255));
        Assert.Contains("label 2 is outside the 2 classes", e.Message);
        Assert.Throws<ArgumentException>(() => Lovasz.Sigmoid(p, rand(2, 3, 4, 4)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new LovaszSigmoidLoss(ignoreIndex: 1));
    }
}
