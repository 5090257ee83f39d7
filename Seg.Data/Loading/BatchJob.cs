namespace Seg.Data;

/// <summary>The dataset indices of one batch and where it sits in the run; its result arrives on <see cref="Done"/>.</summary>
internal sealed class BatchJob(int[] indices, long iteration, long epoch)
{
    public int[] Indices { get; } = indices;
    public long Iteration { get; } = iteration;
    public long Epoch { get; } = epoch;
    public TaskCompletionSource<SegmentationBatch> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}
