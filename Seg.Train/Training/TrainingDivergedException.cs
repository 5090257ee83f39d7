namespace Seg.Train.Training;

/// <summary>
/// The loss became NaN or infinite. Training stops without writing a checkpoint, so <c>last.ckpt</c> stays the last
/// good state.
/// </summary>
public sealed class TrainingDivergedException(long iteration, string term, double value)
    : Exception($"loss diverged at iteration {iteration}: term '{term}' is {value}; the last good checkpoint is kept (lower optimizer.lr or check the data)")
{
    /// <summary>The 1-based iteration whose loss was not finite.</summary>
    public long Iteration { get; } = iteration;
    /// <summary>The loss term that produced it (or "loss" for the total).</summary>
    public string Term { get; } = term;
}
