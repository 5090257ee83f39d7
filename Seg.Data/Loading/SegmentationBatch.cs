using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Data;

/// <summary>
/// One batch: <see cref="Images"/> <c>[B, 3, H, W]</c> float32 RGB (normalised as the pipeline says) and
/// <see cref="Labels"/> <c>[B, H, W]</c> int64, on the loader's device. The consumer owns it: dispose it after
/// the step. Its tensors belong to no dispose scope.
/// </summary>
public sealed class SegmentationBatch : IDisposable
{
    internal SegmentationBatch(Tensor images, Tensor labels, IReadOnlyList<string> ids, IReadOnlyList<int> indices, long iteration, long epoch)
        => (Images, Labels, Ids, Indices, Iteration, Epoch) = (images, labels, ids, indices, iteration, epoch);

    /// <summary><c>[B, 3, H, W]</c> float32, RGB.</summary>
    public Tensor Images { get; }

    /// <summary><c>[B, H, W]</c> int64 labels (ignore index where unlabelled).</summary>
    public Tensor Labels { get; }

    /// <summary>Sample ids, batch order.</summary>
    public IReadOnlyList<string> Ids { get; }

    /// <summary>Dataset indices, batch order.</summary>
    public IReadOnlyList<int> Indices { get; }

    /// <summary>Global iteration (training) or batch number within the epoch (evaluation).</summary>
    public long Iteration { get; }

    /// <summary>The epoch this batch belongs to.</summary>
    public long Epoch { get; }

    /// <summary>Number of samples.</summary>
    public int Count => Ids.Count;

    /// <summary>Frees both tensors.</summary>
    public void Dispose()
    {
        Images.Dispose();
        Labels.Dispose();
    }
}
