using System.Diagnostics;
using Seg.Core.Amp;
using Seg.Core.Losses;
using Seg.Core.Native;
using Seg.Data;
using Seg.Data.Datasets;
using Seg.Train.Config;
using Seg.Train.Distributed;
using Seg.Train.Evaluation;
using Seg.Train.Reports;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Seg.Train.Training;

/// <summary>
/// Everything one training run holds, built by <see cref="Trainer"/>'s setup and read by its step, evaluation and
/// report functions: the config and what was built from it, the files it writes, the best score and the loop's
/// counters. Disposing it closes the logs, the loaders and the run folder's lock.
/// </summary>
sealed class TrainingRun : IDisposable
{
    public required TrainRequest Request { get; init; }
    public required TrainConfig Config { get; init; }
    public required DataParallel Parallel { get; init; }
    public required RunPaths Paths { get; init; }
    public required ThreadChoice Threads { get; init; }
    /// <summary>Settles 1 thread or all by timing steps (<c>train.threads: 0</c> on the CPU), or null.</summary>
    public required ThreadTuner? Tuner { get; init; }
    public required Device Device { get; init; }
    public required RunPrecision Precision { get; init; }
    /// <summary>fp16's loss scaler; null in the other precisions.</summary>
    public required GradScaler? Scaler { get; init; }
    public required ISegmentationDataset TrainSet { get; init; }
    public required ISegmentationDataset ValSet { get; init; }
    public required TransformPipeline ValPipeline { get; init; }
    public required nn.Module<Tensor, Tensor> Model { get; init; }
    public required CompositeLoss Criterion { get; init; }
    public required optim.Optimizer Optimizer { get; init; }

    /// <summary>Rank 0's run folder (lock, config, checkpoints); null on the other ranks.</summary>
    public RunFolder? Folder { get; set; }
    public SegmentationLoader TrainLoader { get; set; } = null!;
    public SegmentationLoader ValLoader { get; set; } = null!;
    public TrainLog? Log { get; set; }
    public SummaryWriter? Board { get; set; }
    public string? SplitWarning { get; set; }

    /// <summary>Total optimizer steps (<c>train.iterations</c>).</summary>
    public long Total => Config.Train.Iterations;
    /// <summary>Steps done before this process started (from the checkpoint when resuming).</summary>
    public long Start { get; set; }
    /// <summary>Steps done so far, counting the one in progress.</summary>
    public long Done { get; set; }
    public double BestMeanIoU { get; set; } = -1.0;
    public long BestIteration { get; set; }
    public EvalResult? LastEval { get; set; }

    public Stopwatch TrainWatch { get; } = new();
    public TimeSpan EvalTime { get; set; }
    public TimeSpan WaitBefore { get; set; }
    public long StepsRun { get; set; }
    /// <summary>When the current optimizer step began (<see cref="Stopwatch.GetTimestamp"/>), for the thread tuner.</summary>
    public long StepStart { get; set; }
    public long ImagesSeen { get; set; }

    public void Dispose()
    {
        Log?.Dispose();
        ValLoader?.Dispose();
        TrainLoader?.Dispose();
        Folder?.Dispose();
    }
}

/// <summary>The values of one optimizer step, agreed by every rank, and whether every rank agreed to stop.</summary>
readonly record struct StepResult(double Loss, IReadOnlyDictionary<string, double> Terms, bool Stop);

/// <summary>
/// The loss and term values of one optimizer step, summed over its k micro-batches (each already divided by k),
/// kept on the device until <see cref="Read"/>: the step's one host wait.
/// </summary>
sealed class StepAccumulator : IDisposable
{
    Tensor? loss;
    readonly Dictionary<string, double> terms = new();
    IReadOnlyDictionary<string, double> lastTerms = new Dictionary<string, double>();

    public void Clear()
    {
        loss?.Dispose();
        loss = null;
        terms.Clear();
    }

    /// <summary>Adds a micro-batch's loss (already / k) and its terms (unscaled: divided by k here).</summary>
    public void Add(Tensor microLoss, IReadOnlyDictionary<string, double> microTerms, int accumulate)
    {
        if (loss is null) loss = microLoss.detach().DetachFromDisposeScope();
        else
        {
            // The sum as a new tensor outside the step's dispose scope, freeing the old one.
            var next = (loss + microLoss.detach()).DetachFromDisposeScope();
            loss.Dispose();
            loss = next;
        }
        lastTerms = microTerms;
        foreach (var (term, value) in microTerms) terms[term] = terms.GetValueOrDefault(term) + value / accumulate;
    }

    /// <summary>The step's loss and terms (with one micro-batch, its own term dictionary, read lazily).</summary>
    public (double Loss, IReadOnlyDictionary<string, double> Terms) Read(int accumulate) =>
        (loss!.ToDouble(), accumulate > 1 ? new Dictionary<string, double>(terms) : lastTerms);

    public void Dispose() => Clear();
}
