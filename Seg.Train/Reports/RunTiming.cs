namespace Seg.Train.Reports;

/// <summary>Throughput of a training session (this process only, when resumed).</summary>
/// <param name="Iterations">Steps run in this session.</param>
/// <param name="Images">Training images seen in this session.</param>
/// <param name="TrainTime">Wall time of the training loop, evaluations excluded.</param>
/// <param name="EvalTime">Wall time spent evaluating.</param>
/// <param name="DataWaitPercent">Share of loop time spent waiting for the loader.</param>
public sealed record RunTiming(long Iterations, long Images, TimeSpan TrainTime, TimeSpan EvalTime, double DataWaitPercent)
{
    /// <summary>Iterations per second of training-loop time.</summary>
    public double IterationsPerSecond => TrainTime.TotalSeconds > 0 ? Iterations / TrainTime.TotalSeconds : 0;
    /// <summary>Images per second of training-loop time.</summary>
    public double ImagesPerSecond => TrainTime.TotalSeconds > 0 ? Images / TrainTime.TotalSeconds : 0;
}
