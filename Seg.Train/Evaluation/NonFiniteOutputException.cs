using static TorchSharp.torch;

namespace Seg.Train.Evaluation;

/// <summary>
/// The model's output was NaN or infinite at some pixels. Their arg-max is meaningless (NaN compares as the largest
/// value, so such pixels became class 0 without a word), so the scores or masks would be wrong: by default
/// <c>eval</c>, validation during <c>train</c> and <c>predict</c> stop with this error; <c>eval.allow_nonfinite</c>
/// (or <c>predict --allow-nonfinite</c>) scores them anyway and reports their count.
/// </summary>
public sealed class NonFiniteOutputException(string imageId, long pixels, long total)
    : Exception($"the model's output is NaN or infinite at {pixels} of {total} pixel(s) of image '{imageId}', so its prediction there " +
                "is meaningless; the model's weights or the input are broken (or set eval.allow_nonfinite=true, or predict --allow-nonfinite, " +
                "to score such pixels as their arg-max and report their count)")
{
    /// <summary>The first image with such pixels.</summary>
    public string ImageId { get; } = imageId;

    /// <summary>How many of its pixels.</summary>
    public long Pixels { get; } = pixels;

    /// <summary>Pixels whose class scores in <paramref name="probabilities"/> [B, C, H, W] are not all finite, per image.</summary>
    public static long[] CountPerImage(Tensor probabilities)
    {
        using var scope = NewDisposeScope();
        return probabilities.isfinite().all(1).logical_not().flatten(1).sum(1).cpu().data<long>().ToArray();
    }
}
