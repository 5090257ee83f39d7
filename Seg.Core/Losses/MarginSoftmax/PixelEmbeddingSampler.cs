using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses.MarginSoftmax;

/// <summary>
/// Picks labelled pixels from pixel embeddings for embedding losses such as <see cref="CenterLoss"/>, whose cost
/// grows with the number of rows: the labels are brought to the embedding's resolution with nearest-neighbour
/// sampling (no label mixing), ignored pixels are dropped, and at most <c>maxPixels</c> of the rest are drawn
/// uniformly without replacement.
/// </summary>
public static class PixelEmbeddingSampler
{
    /// <summary>Returns embeddings [n,D] and labels [n] (int64), n ≤ <paramref name="maxPixels"/>.</summary>
    /// <param name="embedding">Pixel embeddings [B,D,h,w].</param>
    /// <param name="labels">Labels [B,H,W] at any resolution (usually the image's).</param>
    /// <param name="maxPixels">Upper bound on the rows returned.</param>
    /// <param name="ignoreIndex">Label value of pixels never returned.</param>
    /// <param name="generator">Random source for the draw (CPU generator; default: torch's global one).</param>
    public static (Tensor Embeddings, Tensor Labels) Sample(Tensor embedding, Tensor labels, int maxPixels,
        long ignoreIndex = 255, Generator? generator = null)
    {
        const string owner = nameof(PixelEmbeddingSampler);
        if (embedding.dim() != 4)
            throw new ArgumentException($"{owner}: embedding must be [B,D,h,w]; got {LossInputs.Shape(embedding)}.", nameof(embedding));
        if (labels.dim() != 3 || labels.shape[0] != embedding.shape[0])
            throw new ArgumentException(
                $"{owner}: labels must be [B,H,W] with B = {embedding.shape[0]} as in embedding {LossInputs.Shape(embedding)}; " +
                $"got {LossInputs.Shape(labels)}.", nameof(labels));
        if (maxPixels < 1) throw new ArgumentOutOfRangeException(nameof(maxPixels), maxPixels, $"{owner}: maxPixels must be ≥ 1.");
        using var scope = NewDisposeScope();
        var (h, w) = (embedding.shape[2], embedding.shape[3]);
        var resized = labels.shape[1] == h && labels.shape[2] == w
            ? labels.to_type(ScalarType.Int64)
            : nn.functional.interpolate(labels.unsqueeze(1).to_type(ScalarType.Float64), size: [h, w],
                    mode: InterpolationMode.Nearest)
                .squeeze(1).to_type(ScalarType.Int64);
        var (rows, y) = EmbeddingRows.NonIgnored(owner, embedding, resized, ignoreIndex);
        if (y.shape[0] > maxPixels)
        {
            var pick = randperm(y.shape[0], generator: generator).narrow(0, 0, maxPixels).to(y.device);
            (rows, y) = (rows.index_select(0, pick), y.index_select(0, pick));
        }
        return (rows.MoveToOuterDisposeScope(), y.MoveToOuterDisposeScope());
    }
}
