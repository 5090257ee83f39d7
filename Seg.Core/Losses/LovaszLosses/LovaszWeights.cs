using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses.LovaszLosses;

/// <summary>
/// The per-pixel weights of the Lovász extension of the Jaccard loss (Berman et al., CVPR 2018, Alg. 1), for many
/// rows at once. Inputs are [B,K,P] errors and foreground masks (K selected classes, P pixels per image) and a
/// [B,1,P] valid mask; a row is one class over the whole batch, or one (image, class) pair when
/// <c>perImage</c>. The Lovász loss of a row is <c>Σ errors · weights</c> over its pixels, where the weight of a
/// pixel is the Jaccard-loss increment of its position in the descending order of errors (<c>lovasz_grad</c> of
/// the reference, scattered back to the pixel's place). Weights are constants for autograd: the gradient flows
/// through the errors only, as in the reference. <see cref="Exact"/> sends float32 CPU input to
/// <see cref="LovaszCpuKernel"/> (the Lovász-Softmax uses the kernel's fused form instead); the generic forms run
/// on the device of the inputs.
/// <para>
/// The generic forms are built for a GPU: a fixed number of device-wide operations whatever the number of rows, no
/// per-row loop, and no host synchronisation (nothing is read back; no operation whose output size depends on the
/// data). The exact form orders all rows with one stable sort of packed 64-bit keys (float64 errors take two
/// stable sorts), counts with one cumulative sum, and scatters the weights back. Both forms compute the Jaccard
/// terms in float64 from exact integer counts and round each weight once, as the CPU kernels do, so that they
/// give the CPU kernels' weights to the last bit (ties, too, are ordered alike: by pixel index).
/// </para>
/// </summary>
internal static class LovaszWeights
{
    /// <summary>
    /// Exact weights. Ignored pixels sort after the valid ones of their row and add nothing to the union, so the
    /// Jaccard terms of the valid pixels are exactly those of the reference, which drops ignored pixels first;
    /// their weight is 0. A row without valid pixels gets all-zero weights.
    /// </summary>
    public static Tensor Exact(Tensor errors, Tensor foreground, Tensor valid, bool perImage) =>
        LovaszCpuKernel.Supports(errors)
            ? LovaszCpuKernel.ExactWeights(errors, foreground, valid, perImage)
            : ExactGeneric(errors, foreground, valid, perImage);

    /// <summary>The device-generic form of <see cref="Exact"/>.</summary>
    public static Tensor ExactGeneric(Tensor errors, Tensor foreground, Tensor valid, bool perImage)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        return ExactInFloat64(errors.detach(), foreground, valid, perImage).to(errors.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Histogram weights: errors (in [0,1]) fall into <paramref name="bins"/> equal bins per row; each pixel gets
    /// its bin's Jaccard increment divided by the bin's pixel count. Because the increments are non-negative (the
    /// Jaccard loss only grows as errors are added) and sum, per bin, to the same value whatever the order inside
    /// the bin, the loss differs from the exact one by at most (bin width) × (total increment) ≤ 1/bins per row.
    /// Device-generic: one count of all (row, bin) slots, cumulative sums over the bins, and a gather.
    /// </summary>
    public static Tensor HistogramGeneric(Tensor errors, Tensor foreground, Tensor valid, bool perImage, int bins)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        return HistogramInFloat64(errors.detach(), foreground, valid, perImage, bins).to(errors.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The device-generic form of <see cref="LovaszCpuKernel.SoftmaxTerms"/>, with the same results: for [B,K,P]
    /// probabilities of the selected classes, their foreground mask and the [B,1,P] valid mask, the signed weights
    /// sign(p − fg)·w (the loss's gradient w.r.t. p; 0 where the error is 0, as the derivative of the reference's
    /// <c>abs</c> is there) and the per-row offsets −Σ sign(p − fg)·w·fg (summed in float64, [B·K] per image, else
    /// [K]), so that a row's loss Σ |fg − p|·w is Σ signedWeights·p + offset. <paramref name="bins"/> 0 is exact.
    /// </summary>
    public static (Tensor SignedWeights, Tensor Offsets) SoftmaxTerms(Tensor probas, Tensor foreground, Tensor valid, bool perImage, int bins)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var p = probas.detach();
        var difference = p - foreground.to(p.dtype);
        var sign = difference.sign();
        var errors = difference * sign;                                                  // |fg − p|, exactly
        var weights = bins > 0
            ? HistogramInFloat64(errors, foreground, valid, perImage, bins)
            : ExactInFloat64(errors, foreground, valid, perImage);
        var signedWeights = weights * sign;
        var rowSums = (signedWeights * foreground).sum(perImage ? [2] : [0, 2]).flatten();
        var offsets = 0 - rowSums;                                                       // +0 for rows without foreground
        return (signedWeights.to(p.dtype).MoveToOuterDisposeScope(), offsets.to(p.dtype).MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Exact float64 weights of [B,K,P] errors. The order puts the rows one after the other, each with its valid
    /// pixels by descending error (ties by pixel index) and then its ignored ones, so row r fills positions
    /// [r·L, (r+1)·L) of the sorted array, L its length. One cumulative sum of the sorted foreground flags, less
    /// each row's offset, gives the foreground count of every prefix; the background count of a prefix is its
    /// length (up to the row's valid count) less that.
    /// </summary>
    static Tensor ExactInFloat64(Tensor errors, Tensor foreground, Tensor valid, bool perImage)
    {
        long b = errors.shape[0], k = errors.shape[1], p = errors.shape[2];
        long rows = perImage ? b * k : k, length = perImage ? p : b * p, n = errors.numel();
        var device = errors.device;
        var order = SortOrder(errors, ~valid, RowIndex(b, k, perImage, device), rows);

        // Counts are exact integers: int32 while they fit, int64 beyond.
        var countType = n < int.MaxValue ? ScalarType.Int32 : ScalarType.Int64;
        var cumulative = foreground.expand(errors.shape).flatten().gather(0, order).cumsum(0, countType).view(rows, length);
        var rowEnds = cumulative.select(1, length - 1);
        var rowOffsets = nn.functional.pad(rowEnds.narrow(0, 0, rows - 1), [1, 0]).unsqueeze(1);
        var cumForeground = cumulative - rowOffsets;                                   // [R,L]
        var validCount = perImage
            ? valid.sum([1, 2]).view(b, 1).expand(b, k).reshape(rows, 1)
            : valid.sum().view(1, 1).expand(rows, 1);
        var prefixLength = arange(1, length + 1, ScalarType.Int64, device: device).view(1, length);
        var cumBackground = prefixLength.minimum(validCount) - cumForeground;
        var increments = JaccardIncrements(cumForeground.to(ScalarType.Float64), cumBackground.to(ScalarType.Float64));
        return zeros(n, ScalarType.Float64, device: device).scatter_(0, order, increments.flatten()).view(errors.shape);
    }

    /// <summary>
    /// The permutation that sorts [B,K,P] errors by (row, ignored, descending error, pixel index). float32 (and
    /// narrower) errors take one stable sort of int64 keys: the row in the high bits, then the ignored flag, then
    /// a 32-bit key whose ascending order is the errors' descending order (that of the CPU kernel). float64 errors
    /// do not fit such a key; they take a stable sort by error, then a stable sort by (row, ignored).
    /// </summary>
    static Tensor SortOrder(Tensor errors, Tensor invalid, Tensor row, long rows)
    {
        if (errors.dtype != ScalarType.Float64)
        {
            const long Low = 1L << 32;                                                   // 32-bit keys, then the ignored flag
            var key = DescendingKey(errors.to(ScalarType.Float32)).masked_fill(invalid, Low) + row * (Low + 1);
            return key.flatten().sort(0, stable: true).Indices;
        }
        var byError = errors.flatten().sort(0, descending: true, stable: true).Indices;
        var group = (row * 2 + invalid.to(ScalarType.Int64)).expand(errors.shape).flatten();
        var groupType = rows * 2 <= short.MaxValue ? ScalarType.Int16 : ScalarType.Int32;  // fewer radix passes
        var byGroup = group.gather(0, byError).to(groupType).sort(0, stable: true).Indices;
        return byError.gather(0, byGroup);
    }

    /// <summary>
    /// int64 keys in [0, 2^32) whose ascending order is the descending order of the float32 values (negative values
    /// and infinities included): the CPU kernel's key. Flipping the magnitude bits of negative floats makes their
    /// bit patterns order as signed integers; 2^31 − 1 − that reverses the order and lands in [0, 2^32).
    /// </summary>
    internal static Tensor DescendingKey(Tensor values)
    {
        var bits = FloatBits(values).to(ScalarType.Int64);                                // in [−2^31, 2^31)
        var signed = bits ^ (bits.lt(0) * int.MaxValue);
        return int.MaxValue - signed;
    }

    /// <summary>
    /// The IEEE-754 bit patterns of float32 values as int32, without a copy (PyTorch's <c>view(torch.int32)</c>,
    /// which TorchSharp 0.107 lacks): <c>set_</c> points an int32 tensor at the floats' storage and keeps its dtype.
    /// </summary>
    internal static Tensor FloatBits(Tensor values)
    {
        if (values.dtype != ScalarType.Float32)
            throw new ArgumentException($"FloatBits needs float32 values, not {values.dtype}.", nameof(values));
        var dense = values.contiguous();
        return empty(0, ScalarType.Int32, device: dense.device).set_(dense);
    }

    /// <summary>Float64 histogram weights of [B,K,P] errors (see <see cref="HistogramGeneric"/>).</summary>
    static Tensor HistogramInFloat64(Tensor errors, Tensor foreground, Tensor valid, bool perImage, int bins)
    {
        long b = errors.shape[0], k = errors.shape[1];
        long rows = perImage ? b * k : k;
        var invalid = ~valid;
        // Bin 0 holds the largest errors, so cumulative sums over bins follow the descending order.
        var bin = (bins - 1) - errors.mul(bins).floor().clamp(0, bins - 1).to(ScalarType.Int64);
        var rowBin = RowIndex(b, k, perImage, errors.device) * bins + bin;               // [B,K,P]
        long slots = rows * bins * 2;
        var slot = (rowBin * 2 + foreground.to(ScalarType.Int64)).masked_fill(invalid, slots);
        var counts = LossInputs.Bincount(slot, slots + 1).narrow(0, 0, slots).view(rows, bins, 2).to(ScalarType.Float64);
        var background = counts.select(-1, 0);
        var fg = counts.select(-1, 1);
        var increments = JaccardIncrements(fg.cumsum(-1), background.cumsum(-1));
        var perPixel = increments / (fg + background).clamp_min(1);
        return perPixel.flatten().gather(0, rowBin.flatten()).view(errors.shape).masked_fill(invalid, 0);
    }

    /// <summary>The row of each (image, class) pair: [B,K,1] ids b·K + k per image, else [1,K,1] ids k.</summary>
    static Tensor RowIndex(long batch, long classes, bool perImage, Device device) =>
        perImage
            ? arange(batch * classes, device: device).view(batch, classes, 1)
            : arange(classes, device: device).view(1, classes, 1);

    /// <summary>
    /// Jaccard-loss increments along the last dim from cumulative foreground and background counts (float64;
    /// the last entry of <paramref name="cumForeground"/> is the row's foreground total):
    /// J_i = 1 − (fg − cumFg_i)/(fg + cumBg_i), the CPU kernels' expression, and increments J_i − J_{i−1} with
    /// J_0 = 0. Where the union is empty (no valid pixel yet) J is 0, so empty rows give zero weights, not 0/0.
    /// </summary>
    static Tensor JaccardIncrements(Tensor cumForeground, Tensor cumBackground)
    {
        var total = cumForeground.narrow(-1, cumForeground.shape[^1] - 1, 1);
        var intersection = total - cumForeground;
        var union = total + cumBackground;
        var jaccard = (1 - intersection / union.clamp_min(1)).masked_fill(union.eq(0), 0);
        var previous = nn.functional.pad(jaccard.narrow(-1, 0, jaccard.shape[^1] - 1), [1, 0]);
        return jaccard - previous;
    }
}
