using Seg.Core.Losses;
using Seg.Core.Losses.LovaszLosses;
using TorchSharp;
using static TorchSharp.torch;
using Sel = Seg.Tests.Losses.LovaszOracle.Selection;

namespace Seg.Tests.Losses;

/// <summary>
/// The device-generic Lovász path (what runs on a GPU) on its own: its sort keys, all input dtypes against the
/// brute-force oracle and the CPU kernels, and rows longer than 2^24 pixels against a closed form.
/// </summary>
public class LovaszGenericTests
{
    public LovaszGenericTests() => TensorData.Init();

    [Fact]
    public void FloatBitsAreTheIeeePatterns()
    {
        using var scope = NewDisposeScope();
        float[] values = [1f, -0f, 0f, 0.5f, -2.75f, float.PositiveInfinity, float.NegativeInfinity, float.Epsilon, -float.MaxValue, 1e-30f];
        var t = tensor(values);
        Assert.Equal(values.Select(BitConverter.SingleToInt32Bits).ToArray(), LovaszWeights.FloatBits(t).data<int>().ToArray());
        // A strided view is read as its values, not as the storage around it.
        var strided = tensor(values).view(5, 2).t();                              // [2,5]: 1, 0, −2.75, −inf, −max, ...
        var expected = Enumerable.Range(0, 10).Select(i => BitConverter.SingleToInt32Bits(values[(i % 5) * 2 + i / 5])).ToArray();
        Assert.Equal(expected, LovaszWeights.FloatBits(strided).flatten().data<int>().ToArray());
        Assert.Throws<ArgumentException>(() => LovaszWeights.FloatBits(t.to(ScalarType.Float64)));
    }

    [Fact]
    public void DescendingKeysOrderLikeTheFloatsReversed()
    {
        using var scope = NewDisposeScope();
        var random = new Random(5);
        var values = new List<float> { 0f, -0f, float.PositiveInfinity, float.NegativeInfinity, float.Epsilon, -float.Epsilon, float.MaxValue, 1f, -1f };
        for (int i = 0; i < 300; i++)
            values.Add((float)((random.NextDouble() - 0.5) * Math.Pow(10, random.Next(-40, 39))));
        var keys = LovaszWeights.DescendingKey(tensor(values.ToArray())).data<long>().ToArray();
        Assert.All(keys, k => Assert.InRange(k, 0L, (1L << 32) - 1));
        for (int i = 0; i < values.Count; i++)
            for (int j = 0; j < values.Count; j++)
            {
                float a = values[i], b = values[j];
                if (a == b && BitConverter.SingleToInt32Bits(a) != BitConverter.SingleToInt32Bits(b))
                    Assert.Equal(float.IsNegative(a), keys[i] > keys[j]);              // +0 before −0, as the CPU kernel
                else
                    Assert.Equal(Math.Sign(b.CompareTo(a)), Math.Sign(keys[i].CompareTo(keys[j])));
            }
    }

    [Theory]
    [InlineData(ScalarType.Float16)]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float64)]
    public void GenericPathOfEveryDtypeMatchesTheOracle(ScalarType dtype)
    {
        // The oracle sees the probabilities as the dtype holds them; the loss is computed in float32 (float64 for
        // float64) and returned in the input's dtype, so the tolerance is that dtype's rounding of the result.
        var random = new Random((int)dtype);
        double tolerance = dtype switch { ScalarType.Float64 => 1e-12, ScalarType.Float32 => 2e-6, ScalarType.Float16 => 1e-3, _ => 8e-3 };
        foreach (var perImage in new[] { false, true })
            foreach (var bins in new[] { 0, 4096 })
            {
                using var scope = NewDisposeScope();
                const int batch = 3, classes = 4, width = 4, pixels = 12;
                var labels = TensorData.RandomLabels(random, batch, pixels, classes - 1, 0.25);
                labels[1] = Enumerable.Repeat(255L, pixels).ToArray();                  // one image all ignored
                var probas = TensorData.Probas(TensorData.RandomProbas(random, batch, classes, pixels), width, dtype);
                var seen = TensorData.Values(probas).Chunk(classes * pixels).Select(img => img.Chunk(pixels).ToArray()).ToArray();
                double expected = LovaszOracle.Softmax(seen, labels, Sel.All, null, perImage, 255);
                var y = TensorData.Labels(labels, width);
                var generic = Lovasz.SoftmaxWithKernelChoice(probas, y, ClassSelection.All, perImage, 255, bins, allowCpuKernel: false);
                Assert.Equal(dtype, generic.dtype);
                // Histogram mode is within 1/bins of the exact loss.
                Assert.Equal(expected, TensorData.Values(generic)[0], bins > 0 ? tolerance + 1.0 / bins : tolerance);
                if (dtype != ScalarType.Float64)
                {
                    // Computed in float32 either way: the same bits as the float32 generic path. The kernel sums
                    // each row's loss in double, so it agrees up to the rounding of float32.
                    var single = probas.to(ScalarType.Float32);
                    TensorData.AssertBitwiseEqual(
                        Lovasz.SoftmaxWithKernelChoice(single, y, ClassSelection.All, perImage, 255, bins, false).to(dtype), generic);
                    if (bins == 0)
                        Assert.Equal(TensorData.Values(generic)[0],
                                     TensorData.Values(Lovasz.SoftmaxWithKernelChoice(single, y, ClassSelection.All, perImage, 255, 0, true).to(dtype))[0],
                                     dtype == ScalarType.Float32 ? 1e-6 : tolerance);
                }
            }
    }

    [Fact]
    public void HingeGenericPathMatchesTheKernelAndTheOracle()
    {
        var random = new Random(9);
        foreach (var perImage in new[] { false, true })
        {
            using var scope = NewDisposeScope();
            var scores = Enumerable.Range(0, 3).Select(_ => Enumerable.Range(0, 20).Select(_ => random.NextDouble() * 4 - 2).ToArray()).ToArray();
            var labels = TensorData.RandomLabels(random, 3, 20, 2, 0.2);
            labels[2] = Enumerable.Repeat(255L, 20).ToArray();
            var x = tensor(scores.SelectMany(r => r).ToArray(), dtype: ScalarType.Float64).view(3, 4, 5);
            var y = TensorData.Labels(labels, 5);
            Assert.Equal(LovaszOracle.Hinge(scores, labels, perImage, 255), Lovasz.Hinge(x, y, perImage, 255).item<double>(), 12);
            // float32 on the CPU takes the kernel for the weights; the generic weights are the same bits.
            var errors = 1 - x.to(ScalarType.Float32).view(3, 1, 20) * (y.eq(1).to(ScalarType.Float32).view(3, 1, 20) * 2 - 1);
            var valid = y.ne(255).view(3, 1, 20);
            var foreground = y.eq(1).view(3, 1, 20) & valid;
            TensorData.AssertBitwiseEqual(LovaszCpuKernel.ExactWeights(errors, foreground, valid, perImage),
                                          LovaszWeights.ExactGeneric(errors, foreground, valid, perImage));
        }
    }

    /// <summary>Heavy: about 1.5 GB and a sort of 17.8 M keys (seconds on an idle 2-core machine).</summary>
    [Fact]
    [Trait("Category", "Heavy")]
    public void RowsLongerThan2Pow24CountExactly()
    {
        // One row of n = 2^24 + 2^20 pixels in descending order of error: m background pixels, then F = n − m
        // foreground ones. Prefix i holds min(i, m) background pixels, so J_i = i/(F + i) for i ≤ m (weight
        // F/((F+i)(F+i−1))) and J_i = i/n beyond (weight 1/n). Counts in float32 would stop at 2^24 (2^24 + 1
        // rounds back to 2^24) and give weight 0 to every pixel past it.
        using var scope = NewDisposeScope();
        const int n = (1 << 24) + (1 << 20), m = 3 * (1 << 22);
        const double f = n - m;
        var index = arange(n, dtype: ScalarType.Float32).view(1, 1, n);
        var errors = 1 - index / n;                                    // non-increasing; float32 ties keep index order
        var foreground = index.ge(m);
        var valid = ones(1, 1, n, dtype: ScalarType.Bool);
        var weights = LovaszWeights.ExactGeneric(errors, foreground, valid, perImage: false).data<float>().ToArray();
        foreach (int i in new[] { 1, 2, 1000, m - 1, m, m + 1, 1 << 24, (1 << 24) + 1, n - 1, n })
        {
            double expected = i <= m ? f / ((f + i) * (f + i - 1)) : 1.0 / n;
            Assert.Equal(1.0, weights[i - 1] / expected, 1e-6);
        }
        Assert.Equal(1.0, weights.Sum(w => (double)w), 1e-6);          // the increments add up to J_n = 1
        // The CPU kernel counts in double: the same bits.
        Assert.Equal(weights, LovaszCpuKernel.ExactWeights(errors, foreground, valid, perImage: false).data<float>().ToArray());
    }
}
