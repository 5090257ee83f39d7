using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses;

/// <summary>
/// The per-pixel weights of the Lovász extension of the Jaccard loss (Berman et al., CVPR 2018, Alg. 1), for many
/// rows at once. A row is one class (of the batch or of one image); the Lovász loss of a row is
/// <c>Σ errors · weights</c>, where the weight of a pixel is the Jaccard-loss increment of its position in the
/// descending order of errors (<c>lovasz_grad</c> of the reference, scattered back to the pixel's place).
/// Weights are constants for autograd: the gradient flows through the errors only, as in the reference.
/// All functions here run under no_grad and on the device of their inputs.
/// </summary>
internal static class LovaszWeights
{
    /// <summary>Counts stay exact in float32 up to 2^24; longer rows count in float64.</summary>
    static ScalarType CountType(ScalarType work, long rowLength) =>
        rowLength < (1L << 24) ? work : ScalarType.Float64;

    /// <summary>
    /// Exact weights. <paramref name="errors"/> [K,P]; <paramref name="foreground"/> and <paramref name="valid"/>
    /// [K,P] bool (foreground implies valid). Ignored pixels sort last (key −∞) and add nothing to the union, so
    /// the Jaccard terms of the valid pixels are exactly those of the reference, which drops ignored pixels first;
    /// their weight is 0. A row without valid pixels gets all-zero weights. float32 rows on the CPU go to
    /// <see cref="LovaszCpuKernel"/>; everything else takes the device-generic path.
    /// </summary>
    public static Tensor Exact(Tensor errors, Tensor foreground, Tensor valid) =>
        LovaszCpuKernel.Supports(errors)
            ? LovaszCpuKernel.ExactWeights(errors, foreground, valid)
            : ExactGeneric(errors, foreground, valid);

    /// <summary>The device-generic form of <see cref="Exact"/>: one batched sort, gather, cumsum and scatter.</summary>
    public static Tensor ExactGeneric(Tensor errors, Tensor foreground, Tensor valid)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        long p = errors.shape[1];
        var countType = CountType(errors.dtype, p);
        var key = errors.detach().masked_fill(valid.logical_not(), double.NegativeInfinity);
        var (_, order) = key.sort(-1, descending: true);
        var fgSorted = foreground.gather(-1, order).to(countType);
        // Valid pixels all sort before ignored ones, so the first nValid positions of each row are the valid ones.
        var nValid = valid.sum(-1, keepdim: true);
        var validSorted = arange(p, device: errors.device).unsqueeze(0).lt(nValid).to(countType);
        var increments = JaccardIncrements(fgSorted.cumsum(-1), (validSorted - fgSorted).cumsum(-1));
        var weights = zeros_like(increments).scatter_(-1, order, increments);
        return weights.to(errors.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Histogram weights: errors (in [0,1]) fall into <paramref name="bins"/> equal bins per row, counted with one
    /// bincount for all rows; each pixel gets its bin's Jaccard increment divided by the bin's pixel count.
    /// Because the increments are non-negative (the Jaccard loss only grows as errors are added) and sum, per bin,
    /// to the same value whatever the order inside the bin, the loss differs from the exact one by at most
    /// (bin width) × (total increment) ≤ 1/bins per row.
    /// <paramref name="errors"/>, <paramref name="foreground"/>, <paramref name="valid"/>: [B,R,P] (valid may
    /// broadcast); <paramref name="rowOf"/>: [B,R,1] int64 row id in [0,<paramref name="rows"/>).
    /// </summary>
    public static Tensor Histogram(Tensor errors, Tensor foreground, Tensor valid, Tensor rowOf, long rows, int bins)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var countType = CountType(errors.dtype, errors.numel());
        // Bin 0 holds the largest errors, so cumulative sums over bins follow the descending order.
        var bin = (bins - 1) - errors.detach().mul(bins).floor().clamp(0, bins - 1).to(ScalarType.Int64);
        var rowBin = rowOf * bins + bin;
        var slot = (rowBin * 2 + foreground.to(ScalarType.Int64)).masked_fill(valid.logical_not(), rows * bins * 2);
        var counts = bincount(slot.flatten(), minlength: rows * bins * 2 + 1)
            .narrow(0, 0, rows * bins * 2).view(rows, bins, 2).to(countType);
        var background = counts.select(-1, 0);
        var fg = counts.select(-1, 1);
        var increments = JaccardIncrements(fg.cumsum(-1), background.cumsum(-1));
        var perPixel = increments / (fg + background).clamp_min(1);
        var weights = perPixel.flatten().take(rowBin.expand(errors.shape)).masked_fill(valid.logical_not(), 0);
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
