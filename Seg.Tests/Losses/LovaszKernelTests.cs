using Seg.Core.Losses;
using Seg.Core.Losses.LovaszLosses;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Tests.Losses;

/// <summary>
/// The CPU kernels against the device-generic tensor path (what runs on a GPU) on the same float32 CPU input: the
/// weights, signed weights, gradients and exact-mode losses agree to the last bit, ties included (both order tied
/// errors by pixel index). The histogram offsets are summed in float32 lanes by the kernel and in float64 by the
/// generic path, so histogram losses agree to float32 rounding.
/// </summary>
public class LovaszKernelTests
{
    public LovaszKernelTests() => TensorData.Init();

    /// <summary>[B,K,P] errors and foreground, [B,1,P] valid; image 0 has no valid pixel.</summary>
    static (Tensor Errors, Tensor Foreground, Tensor Valid) RandomCase(int seed, bool ties)
    {
        var g = new Generator((ulong)seed);
        var errors = rand([3, 4, 700], generator: g);
        if (ties) errors = (errors * 8).floor() / 8; // many equal errors
        var valid = rand([3, 1, 700], generator: g).gt(0.1);
        valid[0] = zeros(1, 700, dtype: ScalarType.Bool);
        var foreground = rand([3, 4, 700], generator: g).lt(0.3) & valid;
        return (errors, foreground, valid);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void ExactKernelMatchesGenericPath(bool ties, bool perImage)
    {
        using var scope = NewDisposeScope();
        var (errors, foreground, valid) = RandomCase(ties ? 1 : 2, ties);
        Assert.True(LovaszCpuKernel.Supports(errors));
        var kernel = LovaszCpuKernel.ExactWeights(errors, foreground, valid, perImage);
        var generic = LovaszWeights.ExactGeneric(errors, foreground, valid, perImage);
        TensorData.AssertBitwiseEqual(kernel, generic);
        long[] dims = perImage ? [2] : [0, 2];
        Assert.Contains(TensorData.Values((errors * generic).sum(dims)), v => v > 0.1);
        Assert.Equal(0.0f, kernel[0].abs().sum().item<float>());
    }

    public static TheoryData<int, bool, string> FusedCases()
    {
        var data = new TheoryData<int, bool, string>();
        foreach (var bins in new[] { 0, 1, 7, 4096 })
            foreach (var perImage in new[] { false, true })
                foreach (var selection in new[] { "present", "all", "only" })
                    data.Add(bins, perImage, selection);
        return data;
    }

    [Theory]
    [MemberData(nameof(FusedCases))]
    public void FusedSoftmaxKernelMatchesGenericPath(int bins, bool perImage, string selection)
    {
        // Same float32 CPU input through the fused kernel and through the device-generic tensor path: equal
        // signed weights and offsets, gradients, and losses up to rounding.
        using var scope = NewDisposeScope();
        var g = new Generator((ulong)(bins * 10 + (perImage ? 1 : 0) + selection.Length));
        // 77 pixels per image: the kernels' eight-wide loops and their scalar tails both run.
        var logits = randn([3, 5, 11, 7], generator: g);
        var labels = randint(0, 4, [3, 11, 7], generator: g).masked_fill(rand([3, 11, 7], generator: g).lt(0.1), 255);
        labels[1] = full(11, 7, 255L);                                    // one image without valid pixels
        var classes = selection switch { "present" => ClassSelection.Present, "all" => ClassSelection.All, _ => ClassSelection.Only(4, 1) };
        (float Loss, Tensor Grad) Run(bool kernel)
        {
            var x = logits.clone().requires_grad_(true);
            var loss = Lovasz.SoftmaxWithKernelChoice(x.softmax(1), labels, classes, perImage, 255, bins, kernel);
            loss.backward();
            return (loss.item<float>(), x.grad!);
        }
        var (kernelLoss, kernelGrad) = Run(true);
        var (genericLoss, genericGrad) = Run(false);
        Assert.True(genericLoss > 0.05);
        // The kernel sums each row's loss in double, the generic path in float32 tensor ops: equal up to float32
        // rounding. The gradients, which the weights alone make, are the same bits.
        Assert.Equal(genericLoss, kernelLoss, 1e-6);
        TensorData.AssertBitwiseEqual(kernelGrad, genericGrad);

        // The terms themselves, on the same probabilities.
        var p = logits.softmax(1).reshape(3, 5, 77);
        long[] ids = selection == "only" ? [4, 1] : [0, 1, 2, 3, 4];
        var selected = cat(ids.Select(id => p.narrow(1, id, 1)).ToArray(), 1);
        var flatLabels = labels.reshape(3, 1, 77);
        var valid = flatLabels.ne(255);
        var (kernelWeights, kernelOffsets, _) = LovaszCpuKernel.SoftmaxTerms(selected, flatLabels.view(3, 77).masked_fill(~valid.view(3, 77), -1), ids, perImage, bins);
        var foreground = flatLabels.eq(tensor(ids).view(1, -1, 1)) & valid;
        var (genericWeights, genericOffsets) = LovaszWeights.SoftmaxTerms(selected, foreground, valid, perImage, bins);
        TensorData.AssertBitwiseEqual(kernelWeights, genericWeights);
        if (bins == 0) TensorData.AssertBitwiseEqual(kernelOffsets, genericOffsets);
        else Assert.True(kernelOffsets.allclose(genericOffsets, rtol: 1e-6, atol: 1e-7));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void FusedExactKernelMatchesGenericPathOnTiesAndOutOfRangeProbabilities(bool perImage)
    {
        // Probabilities as a caller may pass them, not only softmax output: many ties (a few distinct values),
        // exact 0 and 1 (zero error, zero gradient), values below 0 and above 1 (the gradient's sign flips), long
        // rows with ignored pixels in every pattern of an eight-pixel block, and a pixel count that leaves a
        // scalar tail.
        using var scope = NewDisposeScope();
        var g = new Generator(11);
        long[] shape = [3, 6, 1457];
        float[] levels = [-0.25f, 0f, 0.125f, 0.25f, 0.5f, 0.75f, 1f, 1.5f, 3f];
        var pick = randint(0, levels.Length, shape, generator: g);
        var probas = tensor(levels).index_select(0, pick.flatten()).view(shape);
        var smooth = rand(shape, generator: g);
        probas = where(rand(shape, generator: g).lt(0.5), probas, smooth);          // half tied, half distinct
        var labels = randint(0, 6, [3, 1457], generator: g).masked_fill(rand([3, 1457], generator: g).lt(0.2), -1);
        var kernelWeights = AssertExactFusedKernelMatchesGenericPath(probas, labels, perImage);
        Assert.True(kernelWeights.lt(0).any().item<bool>() && kernelWeights.gt(0).any().item<bool>());
        Assert.Equal(0f, kernelWeights.masked_select(labels.lt(0).view(3, 1, 1457).expand(shape)).abs().sum().item<float>());
    }

    /// <summary>The fused exact kernel's signed weights and offsets for [B,C,P] probabilities of every class and
    /// [B,P] labels (−1 = ignored) equal the generic path's to the last bit; returns the kernel's weights.</summary>
    static Tensor AssertExactFusedKernelMatchesGenericPath(Tensor probas, Tensor labels, bool perImage)
    {
        long batch = probas.shape[0], classes = probas.shape[1], pixels = probas.shape[2];
        long[] ids = Enumerable.Range(0, (int)classes).Select(c => (long)c).ToArray();
        var (kernelWeights, kernelOffsets, _) = LovaszCpuKernel.SoftmaxTerms(probas, labels, ids, perImage, bins: 0);
        var valid = labels.ge(0).view(batch, 1, pixels);
        var foreground = labels.view(batch, 1, pixels).eq(arange(classes).view(1, classes, 1)) & valid;
        var (genericWeights, genericOffsets) = LovaszWeights.SoftmaxTerms(probas, foreground, valid, perImage, bins: 0);
        TensorData.AssertBitwiseEqual(kernelWeights, genericWeights);
        TensorData.AssertBitwiseEqual(kernelOffsets, genericOffsets);
        return kernelWeights;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ExactKernelSortsLongRowsWithCrowdedKeysLikeTheGenericPath(bool perImage)
    {
        // Rows of tens of thousands of errors: most crowded into narrow bands beside uniform ones (radix digits
        // that crowd), ties, and one image's class whose errors all share one key (per image, every radix pass
        // is skipped and element order is the order). Both kernels against the generic path.
        using var scope = NewDisposeScope();
        var g = new Generator(29);
        const int pixels = 40_000;
        long[] shape = [2, 4, pixels];
        var uniform = rand(shape, generator: g);
        // Crowds: 2^-12-wide bands hold many errors that share all but their low key bits.
        var band = rand(shape, generator: g) * (1f / 4096);
        var which = rand(shape, generator: g);
        var errors = where(which.lt(0.5), 0.5f + band,
                     where(which.lt(0.53), 0.25f + band,
                     where(which.lt(0.532), 0.125f + band,
                     where(which.lt(0.5322), 0.0625f + band, uniform))));
        errors = where(rand(shape, generator: g).lt(0.05), (errors * 64).floor() / 64, errors);   // some ties
        errors[1, 3] = full(pixels, 0.375f);                                                     // one key
        var valid = rand([2, 1, pixels], generator: g).gt(0.1);
        var foreground = rand(shape, generator: g).lt(0.2) & valid;
        TensorData.AssertBitwiseEqual(LovaszCpuKernel.ExactWeights(errors, foreground, valid, perImage),
                                      LovaszWeights.ExactGeneric(errors, foreground, valid, perImage));

        // The fused kernel on the same crowded values as probabilities (error = p for background pixels).
        var labels = randint(0, 4, [2, pixels], generator: g).masked_fill(~valid.view(2, pixels), -1);
        AssertExactFusedKernelMatchesGenericPath(errors, labels, perImage);
    }

    [Fact]
    public void ExactKernelOrdersNegativeAndInfiniteErrors()
    {
        // Hinge errors can be negative; the order-preserving key must sort them below the positive ones.
        using var scope = NewDisposeScope();
        var errors = tensor(new[] { -3f, 2f, -0.5f, float.PositiveInfinity, 0f, 1e-30f }).view(1, 1, 6);
        var foreground = tensor(new[] { true, false, true, false, true, false }).view(1, 1, 6);
        var valid = ones(1, 1, 6, dtype: ScalarType.Bool);
        var kernel = LovaszCpuKernel.ExactWeights(errors, foreground, valid, perImage: true);
        var generic = LovaszWeights.ExactGeneric(errors, foreground, valid, perImage: true);
        TensorData.AssertBitwiseEqual(kernel, generic);
        // Descending: +inf, 2, 1e-30, 0, −0.5, −3 with foreground flags 0,0,0,1,1,1 (F = 3): J_i = 1 − (3 − fg_i)/(3 + bg_i).
        double[] jaccard = [1 - 3.0 / 4, 1 - 3.0 / 5, 1 - 3.0 / 6, 1 - 2.0 / 6, 1 - 1.0 / 6, 1];
        var expected = new float[6];
        int[] position = [5, 1, 4, 0, 3, 2];   // pixel i is at this place in the descending order
        for (int i = 0; i < 6; i++) expected[i] = (float)(jaccard[position[i]] - (position[i] == 0 ? 0 : jaccard[position[i] - 1]));
        Assert.Equal(expected, generic.data<float>().ToArray());
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
                Assert.Equal(reference, single, 1e-5);
            }
        var x = randn([2, 16, 16], generator: g, dtype: ScalarType.Float64);
        var y = randint(0, 2, [2, 16, 16], generator: g);
        Assert.Equal(Lovasz.Hinge(x, y).item<double>(), Lovasz.Hinge(x.to(ScalarType.Float32), y).item<float>(), 1e-5);
    }
}
