using Seg.Core.Losses;
using Seg.Core.Losses.LovaszLosses;
using Seg.Core.Losses.MetricLosses;
using Seg.Core.Losses.PixelLosses;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Tests.Losses;

/// <summary>Cross-entropy, BCE, Dice and focal losses against their formulas evaluated in plain doubles.</summary>
public class PixelLossTests
{
    public PixelLossTests() => TensorData.Init();

    const int N = 12, C = 4;

    static (double[][] Logits, long[] Labels) Case(int seed, double ignoredShare = 0.2, int classes = C)
    {
        var random = new Random(seed);
        var logits = Enumerable.Range(0, N).Select(_ => Enumerable.Range(0, classes).Select(_ => random.NextDouble() * 6 - 3).ToArray()).ToArray();
        var labels = Enumerable.Range(0, N).Select(_ => random.NextDouble() < ignoredShare ? 255L : random.Next(classes)).ToArray();
        return (logits, labels);
    }

    /// <summary>The module's value on [N,C]+[N] and on the same pixels as one [1,C,3,4] image; both must agree.</summary>
    static double Evaluate(nn.Module<Tensor, Tensor, Tensor> loss, double[][] logits, long[] labels)
    {
        using var scope = NewDisposeScope();
        var flat = tensor(logits.SelectMany(r => r).ToArray(), dtype: ScalarType.Float64).view(N, -1);
        var y = tensor(labels);
        double value = loss.call(flat, y).item<double>();
        double image = loss.call(flat.t().reshape(1, -1, 3, 4), y.view(1, 3, 4)).item<double>();
        Assert.Equal(value, image, 12);
        return value;
    }

    static double[] LogSoftmax(double[] z)
    {
        double max = z.Max();
        double log = max + Math.Log(z.Sum(v => Math.Exp(v - max)));
        return z.Select(v => v - log).ToArray();
    }

    static double CrossEntropyOracle(double[][] logits, long[] labels, double[]? weights, double smoothing, double temperature)
    {
        double total = 0, denominator = 0;
        for (int i = 0; i < N; i++)
        {
            if (labels[i] == 255) continue;
            var logp = LogSoftmax(logits[i].Select(v => v / temperature).ToArray());
            int y = (int)labels[i];
            double wy = weights?[y] ?? 1;
            double smooth = Enumerable.Range(0, logp.Length).Sum(c => (weights?[c] ?? 1) * -logp[c]) / logp.Length;
            total += (1 - smoothing) * wy * -logp[y] + smoothing * smooth;
            denominator += wy;
        }
        return denominator == 0 ? 0 : total / denominator;
    }

    [Theory]
    [InlineData(false, 0.0, 1.0)]
    [InlineData(true, 0.0, 1.0)]
    [InlineData(false, 0.1, 1.0)]
    [InlineData(true, 0.2, 2.5)]
    [InlineData(false, 0.0, 0.5)]
    public void CrossEntropyMatchesFormula(bool weighted, double smoothing, double temperature)
    {
        var (logits, labels) = Case(1);
        double[]? weights = weighted ? [0.5, 2.0, 1.0, 3.0] : null;
        var loss = new SoftmaxCrossEntropyLoss(weights, ignoreIndex: 255, labelSmoothing: smoothing, temperature: temperature);
        Assert.Equal(CrossEntropyOracle(logits, labels, weights, smoothing, temperature), Evaluate(loss, logits, labels), 10);
    }

    [Fact]
    public void CrossEntropyOfAllIgnoredIsZeroWithZeroGradient()
    {
        using var scope = NewDisposeScope();
        var x = randn(2, 3, 2, 2).requires_grad_(true);
        foreach (var loss in new nn.Module<Tensor, Tensor, Tensor>[]
                 { new SoftmaxCrossEntropyLoss(), new SoftmaxCrossEntropyLoss([1.0, 2.0, 3.0], labelSmoothing: 0.1), new FocalLoss(), new DiceLoss() })
        {
            x.grad?.zero_();
            var value = loss.call(x, full(2, 2, 2, 255L));
            Assert.True(float.IsFinite(value.item<float>()));
            if (loss is not DiceLoss) Assert.Equal(0f, value.item<float>());
            value.backward();
            Assert.Equal(0f, x.grad!.abs().sum().item<float>());
        }
    }

    [Fact]
    public void CrossEntropyRejectsBadInput()
    {
        using var scope = NewDisposeScope();
        Assert.Contains("3 class weights for logits [2,4,2,2]",
            Assert.Throws<ArgumentException>(() => new SoftmaxCrossEntropyLoss([1.0, 1.0, 1.0]).call(randn(2, 4, 2, 2), zeros(2, 2, 2, dtype: ScalarType.Int64))).Message);
        Assert.Contains("labels [2,3,2] do not match logits [2,4,2,2]",
            Assert.Throws<ArgumentException>(() => new SoftmaxCrossEntropyLoss().call(randn(2, 4, 2, 2), zeros(2, 3, 2, dtype: ScalarType.Int64))).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new SoftmaxCrossEntropyLoss(temperature: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new SoftmaxCrossEntropyLoss(labelSmoothing: 1.5));
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(3.0)]
    public void BinaryCrossEntropyMatchesFormula(double positiveWeight)
    {
        var random = new Random(4);
        var x = Enumerable.Range(0, N).Select(_ => random.NextDouble() * 8 - 4).ToArray();
        var y = Enumerable.Range(0, N).Select(_ => random.NextDouble() < 0.2 ? 255L : random.Next(2)).ToArray();
        double total = 0; int count = 0;
        for (int i = 0; i < N; i++)
        {
            if (y[i] == 255) continue;
            double s = 1 / (1 + Math.Exp(-x[i]));
            total += -(positiveWeight * y[i] * Math.Log(s) + (1 - y[i]) * Math.Log(1 - s));
            count++;
        }
        using var scope = NewDisposeScope();
        var loss = new BinaryCrossEntropyLoss(positiveWeight);
        var logits = tensor(x, dtype: ScalarType.Float64);
        var labels = tensor(y);
        Assert.Equal(total / count, loss.call(logits, labels).item<double>(), 10);
        Assert.Equal(total / count, loss.call(logits.view(1, 1, 3, 4), labels.view(1, 3, 4)).item<double>(), 10);
        Assert.Equal(0.0, loss.call(logits, full_like(labels, 255L)).item<double>());
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(1e-3)]
    public void DiceMatchesFormula(double smooth)
    {
        var (logits, labels) = Case(5);
        double sum = 0;
        for (int c = 0; c < C; c++)
        {
            double intersection = 0, cardinality = 0;
            for (int i = 0; i < N; i++)
            {
                if (labels[i] == 255) continue;
                double p = Math.Exp(LogSoftmax(logits[i])[c]);
                double t = labels[i] == c ? 1 : 0;
                intersection += p * t;
                cardinality += p + t;
            }
            sum += 1 - (2 * intersection + smooth) / (cardinality + smooth);
        }
        Assert.Equal(sum / C, Evaluate(new DiceLoss(smooth), logits, labels), 10);
    }

    [Theory]
    [InlineData(2.0, 1.0)]
    [InlineData(0.5, 0.25)]
    public void FocalMatchesFormula(double gamma, double alpha)
    {
        var (logits, labels) = Case(6);
        double total = 0; int count = 0;
        for (int i = 0; i < N; i++)
        {
            if (labels[i] == 255) continue;
            double logp = LogSoftmax(logits[i])[labels[i]];
            total += -alpha * Math.Pow(1 - Math.Exp(logp), gamma) * logp;
            count++;
        }
        Assert.Equal(total / count, Evaluate(new FocalLoss(gamma, alpha), logits, labels), 10);
    }

    [Fact]
    public void FocalWithoutFocusingIsCrossEntropy()
    {
        var (logits, labels) = Case(7);
        Assert.Equal(CrossEntropyOracle(logits, labels, null, 0, 1), Evaluate(new FocalLoss(gamma: 0), logits, labels), 10);
    }

    [Fact]
    public void LossesKeepHalfPrecisionInputsWorking()
    {
        using var scope = NewDisposeScope();
        var x = randn(2, 3, 4, 4).to(ScalarType.BFloat16).requires_grad_(true);
        var y = randint(0, 3, [2, 4, 4]);
        foreach (var loss in new nn.Module<Tensor, Tensor, Tensor>[]
                 { new SoftmaxCrossEntropyLoss(), new DiceLoss(), new FocalLoss(), new LovaszSoftmaxLoss(), new LovaszSoftmaxLoss(bins: 64) })
        {
            var value = loss.call(x, y);
            Assert.Equal(ScalarType.Float32, value.dtype);   // computed and returned in float32 (issue 22, as PyTorch AMP)
            value.backward();
            Assert.True(x.grad!.isfinite().all().item<bool>());
        }
    }
}
