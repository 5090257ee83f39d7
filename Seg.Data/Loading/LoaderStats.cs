namespace Seg.Data;

/// <summary>
/// A snapshot of a loader's counters since it was made. <see cref="DataWaitPercent"/> is the share of the time
/// spent inside the loader's enumerations during which the consumer was blocked waiting for a batch: near 0
/// means the workers keep up with training.
/// </summary>
public sealed record LoaderStats(long Batches, long Samples, TimeSpan WaitTime, TimeSpan Elapsed, int SkippedSamples)
{
    /// <summary>100 × <see cref="WaitTime"/> / <see cref="Elapsed"/> (0 before anything ran).</summary>
    public double DataWaitPercent => Elapsed > TimeSpan.Zero ? 100.0 * WaitTime.Ticks / Elapsed.Ticks : 0;
}
