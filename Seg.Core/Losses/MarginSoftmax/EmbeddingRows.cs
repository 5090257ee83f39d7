using static TorchSharp.torch;

namespace Seg.Core.Losses.MarginSoftmax;

/// <summary>Turns embeddings [N,D] or pixel embeddings [B,D,H,W] into rows [n,D] of the non-ignored samples.</summary>
internal static class EmbeddingRows
{
    /// <summary>The rows [n,D] and their labels [n] (int64) whose label is not <paramref name="ignoreIndex"/>.</summary>
    internal static (Tensor Rows, Tensor Labels) NonIgnored(string owner, Tensor features, Tensor labels, long ignoreIndex)
    {
        var y = LossInputs.CheckLabels(owner, features, labels, nameof(features)).flatten();
        var rows = features.dim() == 2 ? features : features.permute(0, 2, 3, 1).reshape(-1, features.shape[1]);
        var keep = y.ne(ignoreIndex).nonzero().squeeze(1);
        return (rows.index_select(0, keep), y.index_select(0, keep));
    }
}
