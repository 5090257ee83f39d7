using Seg.Core.Losses;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Tests.Losses;

/// <summary>The CPU kernels against the device-generic tensor path they replace on float32 CPU input.</summary>
public class LovaszKernelTests
{
    public LovaszKernelTests() => TensorData.Init();

    static (Tensor Errors, Tensor Foreground, Tensor Valid) RandomRows(int seed, long rows, long length, bool ties)
    {
        var g = new Generator((ulong)seed);
        var errors = rand([rows, length], generator: g);
        if (ties) errors = (errors * 8).floor() / 8; // many equal errors
        var foreground = rand([rows, length], generator: g).lt(0.3);
        var valid = rand([rows, length], generator: g).gt(0.1);
        valid[0] = zeros(length, dtype: ScalarType.Bool); // a row without valid pixels
        return (errors, foreground & valid, valid);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ExactKernelMatchesGenericPath(bool ties)
    {
        using var scope = NewDisposeScope();
        var (errors, foreground, valid) = RandomRows(ties ? 1 : 2, 6, 3000, ties);
        Assert.True(LovaszCpuKernel.Supports(errors));
        var kernel = LovaszCpuKernel.ExactWeights(errors, foreground, valid);
        var generic = LovaszWeights.ExactGeneric(errors, foreground, valid);
        // Per-row losses agree; with ties the individual weights may differ (order within a tie), the loss not.
        var lossKernel = TensorData.Values((errors * kernel).sum(-1));
        var lossGeneric = TensorData.Values((errors * generic).sum(-1));
        for (int r = 0; r < lossKernel.Length; r++) Assert.Equal(lossGeneric[r], lossKernel[r], 5);
        if (!ties) Assert.True(kernel.allclose(generic, rtol: 1e-4, atol: 1e-6));
        Assert.Equal(0.0, kernel[0].abs().sum().item<float>());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(4096)]
    public void HistogramKernelMatchesGenericPath(int bins)
    {
        using var scope = NewDisposeScope();
        var (errors, foreground, valid) = RandomRows(bins, 6, 2000, ties: false);
        var e = errors.view(2, 3, 2000);
        var fg = foreground.view(2, 3, 2000);
        var v = valid.view(2, 3, 2000);
        foreach (var perImage in new[] { false, true })
        {
            var rowOf = perImage ? arange(6).view(2, 3, 1) : arange(3).view(1, 3, 1).expand(2, 3, 1);
            long rows = perImage ? 6 : 3;
            var kernel = LovaszCpuKernel.HistogramWeights(e, fg, v, rowOf.expand(2, 3, 1).flatten().data<long>().ToArray(), rows, bins);
            var generic = LovaszWeights.HistogramGeneric(e, fg, v, rowOf, rows, bins);
            Assert.True(kernel.allclose(generic, rtol: 1e-4, atol: 1e-7));
        }
    }

    [Fact]
    public void ExactKernelOrdersNegativeAndInfiniteErrors()
    {
        // Hinge errors can be negative; the order-preserving key must sort them below the positive ones.
        using var scope = NewDisposeScope();
        var errors = tensor(new[] { -3f, 2f, -0.5f, float.PositiveInfinity, 0f, 1e-30f }).view(1, 6);
        var foreground = tensor(new[] { true, false, true, false, true, false }).view(1, 6);
        var valid = ones(1, 6, dtype: ScalarType.Bool);
        var kernel = LovaszCpuKernel.ExactWeights(errors, foreground, valid);
        var generic = LovaszWeights.ExactGeneric(errors, foreground, valid);
        Assert.True(kernel.allclose(generic, atol: 1e-7));
    }

    [Fact]
    public void Float32LossMatchesFloat64Loss()
    {
        // float32 on the CPU takes the kernels, float64 the generic path: the public API agrees across them.
        using var scope = NewDisposeScope();
        var g = new Generator(4);
        var p = rand([2, 5, 16, 16], generator: g, dtype: ScalarType.Float64).softmax(1);
        var labels = randint(0, 5, [2, 16, 16], generator: g).masked_fill(rand([2, 16, 16], generator: g).lt(0.1), 255);
        foreach (var perImage in new[] { false, true })
            foreach (var bins in new[] { 0, 64 })
            {
                double reference = Lovasz.Softmax(p, labels, perImage: perImage, ignoreIndex: 255, bins: bins).item<double>();
                double single = Lovasz.Softmax(p.to(ScalarType.Float32), labels, perImage: perImage, ignoreIndex: 255, bins: bins).item<float>();
                Assert.Equal(reference, single, 5);
            }
        var x = randn([2, 16, 16], generator: g, dtype: ScalarType.Float64);
        var y = randint(0, 2, [2, 16, 16], generator: g);
        Assert.Equal(Lovasz.Hinge(x, y).item<double>(), Lovasz.Hinge(x.to(ScalarType.Float32), y).item<float>(), 5);
    }
}
