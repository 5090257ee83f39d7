using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses;

/// <summary>
/// The per-pixel weights of the Lovász extension of the Jaccard loss (Berman et al., CVPR 2018, Alg. 1), for many
/// rows at once. Inputs are [B,K,P] errors and foreground masks (K selected classes, P pixels per image) and a
/// [B,1,P] valid mask; a row is one class over the whole batch, or one (image, class) pair when
/// <c>perImage</c>. The Lovász loss of a row is <c>Σ errors · weights</c> over its pixels, where the weight of a
/// pixel is the Jaccard-loss increment of its position in the descending order of errors (<c>lovasz_grad</c> of
/// the reference, scattered back to the pixel's place). Weights are constants for autograd: the gradient flows
/// through the errors only, as in the reference. The generic forms run on the device of the inputs;
/// <see cref="Exact"/> sends float32 CPU input to <see cref="LovaszCpuKernel"/> (the Lovász-Softmax uses the
/// kernel's fused form instead).
/// </summary>
internal static class LovaszWeights
{
    /// <summary>
    /// Exact weights. Ignored pixels sort last (key −∞) and add nothing to the union, so the Jaccard terms of the
    /// valid pixels are exactly those of the reference, which drops ignored pixels first; their weight is 0.
    /// A row without valid pixels gets all-zero weights.
    /// </summary>
    public static Tensor Exact(Tensor errors, Tensor foreground, Tensor valid, bool perImage) =>
        LovaszCpuKernel.Supports(errors)
            ? LovaszCpuKernel.ExactWeights(errors, foreground, valid, perImage)
            : ExactGeneric(errors, foreground, valid, perImage);

    /// <summary>Counts stay exact in float32 up to 2^24; longer rows count in float64.</summary>
    static ScalarType CountType(ScalarType work, long rowLength) =>
        rowLength < (1L << 24) ? work : ScalarType.Float64;

    /// <summary>The device-generic form of <see cref="Exact"/>: one batched sort, gather, cumsum and scatter.</summary>
    public static Tensor ExactGeneric(Tensor errors, Tensor foreground, Tensor valid, bool perImage)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        long b = errors.shape[0], k = errors.shape[1], p = errors.shape[2];
        var fullValid = valid.expand(errors.shape);
        Tensor Rows(Tensor t) => perImage ? t.reshape(b * k, p) : t.permute(1, 0, 2).reshape(k, b * p);
        var weights = ExactRows(Rows(errors.detach()), Rows(foreground), Rows(fullValid));
        var result = perImage ? weights.view(b, k, p) : weights.view(k, b, p).permute(1, 0, 2);
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>Exact weights of [R,L] rows: sort, gather the foreground, Jaccard increments, scatter back.</summary>
    static Tensor ExactRows(Tensor errors, Tensor foreground, Tensor valid)
    {
        long length = errors.shape[1];
        var countType = CountType(errors.dtype, length);
        var key = errors.masked_fill(valid.logical_not(), double.NegativeInfinity);
        var (_, order) = key.sort(-1, descending: true);
        var fgSorted = foreground.gather(-1, order).to(countType);
        // Valid pixels all sort before ignored ones, so the first nValid positions of each row are the valid ones.
        var nValid = valid.sum(-1, keepdim: true);
        var validSorted = arange(length, device: errors.device).unsqueeze(0).lt(nValid).to(countType);
        var increments = JaccardIncrements(fgSorted.cumsum(-1), (validSorted - fgSorted).cumsum(-1));
        return zeros_like(increments).scatter_(-1, order, increments).to(errors.dtype);
    }

    /// <summary>
    /// Histogram weights: errors (in [0,1]) fall into <paramref name="bins"/> equal bins per row; each pixel gets
    /// its bin's Jaccard increment divided by the bin's pixel count. Because the increments are non-negative (the
    /// Jaccard loss only grows as errors are added) and sum, per bin, to the same value whatever the order inside
    /// the bin, the loss differs from the exact one by at most (bin width) × (total increment) ≤ 1/bins per row.
    /// Device-generic: one bincount for all rows, cumsums and a take.
    /// </summary>
    public static Tensor HistogramGeneric(Tensor errors, Tensor foreground, Tensor valid, bool perImage, int bins)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        long b = errors.shape[0], k = errors.shape[1];
        long rows = perImage ? b * k : k;
        var rowOf = perImage
            ? arange(b * k, device: errors.device).view(b, k, 1)
            : arange(k, device: errors.device).view(1, k, 1);
        var countType = CountType(errors.dtype, errors.numel());
        // Bin 0 holds the largest errors, so cumulative sums over bins follow the descending order.
        var bin = (bins - 1) - errors.detach().mul(bins).floor().clamp(0, bins - 1).to(ScalarType.Int64);
        var rowBin = rowOf * bins + bin;
        var invalid = valid.logical_not().expand(errors.shape);
        var slot = (rowBin * 2 + foreground.to(ScalarType.Int64)).masked_fill(invalid, rows * bins * 2);
        var counts = bincount(slot.flatten(), minlength: rows * bins * 2 + 1)
            .narrow(0, 0, rows * bins * 2).view(rows, bins, 2).to(countType);
        var background = counts.select(-1, 0);
        var fg = counts.select(-1, 1);
        var increments = JaccardIncrements(fg.cumsum(-1), background.cumsum(-1));
        var perPixel = increments / (fg + background).clamp_min(1);
        var weights = perPixel.flatten().take(rowBin).masked_fill(invalid, 0);
        return weights.to(errors.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Jaccard-loss increments along the last dim from cumulative foreground and background counts
    /// (the last entry of <paramref name="cumForeground"/> is the row's foreground total):
    /// J_i = 1 − (fg − cumFg_i)/(fg + cumBg_i), increments J_i − J_{i−1} with J_0 = 0. Where the union is
    /// empty (no valid pixel yet) J is 0, so empty rows give zero weights instead of 0/0.
    /// </summary>
    static Tensor JaccardIncrements(Tensor cumForeground, Tensor cumBackground)
    {
        var total = cumForeground.narrow(-1, cumForeground.shape[^1] - 1, 1);
        var intersection = total - cumForeground;
        var union = total + cumBackground;
        var jaccard = where(union.gt(0), 1 - intersection / union.clamp_min(1), zeros_like(union));
        var previous = nn.functional.pad(jaccard.narrow(-1, 0, jaccard.shape[^1] - 1), [1, 0]);
        return jaccard - previous;
    }
}
