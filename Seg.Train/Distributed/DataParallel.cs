using System.Globalization;
using Seg.Core;
using Seg.Core.Distributed;
using Seg.Core.Optim;
using Seg.Data;
using Seg.Train.Config;
using Seg.Train.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Seg.Train.Distributed;

/// <summary>
/// The trainer's side of data-parallel training over a <see cref="ProcessGroup"/>, as small hooks that the
/// training loop calls at fixed points: which device this rank uses, how the loaders shard, SyncBatchNorm,
/// the weights broadcast from rank 0, gradient averaging, the loss mean over ranks and the agreement to stop. In a
/// one-process group (<see cref="Alone"/>) every hook leaves training exactly as it was.
/// </summary>
public sealed class DataParallel
{
    GradientReducer? reducer;

    /// <summary>Hooks over <paramref name="group"/>.</summary>
    public DataParallel(ProcessGroup group) => Group = group ?? throw new ArgumentNullException(nameof(group));

    /// <summary>One process: no communication.</summary>
    public static DataParallel Alone { get; } = new(ProcessGroup.Single());

    /// <summary>The job's processes.</summary>
    public ProcessGroup Group { get; }

    /// <summary>Rank 0: the one that writes the run folder and prints.</summary>
    public bool IsMain => Group.IsMain;

    /// <summary>Number of processes.</summary>
    public int WorldSize => Group.Size;

    /// <summary>
    /// Joins the job of the current process (or none), sets the console roles (<see cref="RankConsole"/>), runs
    /// <paramref name="verb"/> and leaves the job. A rank whose verb fails (non-zero exit, other than an agreed
    /// interrupt) ends the whole job with MPI_Abort, so that no rank waits forever in a collective.
    /// </summary>
    public static int Run(Func<DataParallel, int> verb, int interruptedCode)
    {
        ProcessGroup group;
        try { group = ProcessGroup.Initialize(); }
        catch (DistributedException e)
        {
            Console.Error.WriteLine("error: " + e.Message);
            return 1;
        }
        using (group)
        {
            RankConsole.Apply(group.Rank);
            var code = verb(group.IsDistributed ? new DataParallel(group) : Alone);
            if (code != 0 && code != interruptedCode && group.Size > 1) group.Abort(code);
            return code;
        }
    }

    /// <summary>
    /// The device of this rank: with several processes, <c>cuda</c> (or <c>auto</c> on a CUDA machine) becomes
    /// <c>cuda:(local rank mod device count)</c>; an explicit <c>cuda:N</c> and the CPU stay as configured.
    /// </summary>
    public Device ResolveDevice(string configured, Device resolved)
    {
        if (!Group.IsDistributed || resolved.type != DeviceType.CUDA || configured.StartsWith("cuda:", StringComparison.Ordinal)) return resolved;
        return new Device(DeviceType.CUDA, Group.LocalRank % Math.Max(1, cuda.device_count()));
    }

    /// <summary>Training loader options: this rank's slice of each step's global batch, with accumulation.</summary>
    public LoaderOptions ShardTraining(LoaderOptions options, int accumulate) =>
        options with { Rank = Group.Rank, WorldSize = Group.Size, Accumulate = accumulate };

    /// <summary>Evaluation loader options: this rank's batches (b mod W = rank).</summary>
    public LoaderOptions ShardEvaluation(LoaderOptions options) => options with { Rank = Group.Rank, WorldSize = Group.Size };

    /// <summary>
    /// Before the optimizer is created: with <c>model.sync_bn</c> and several processes, BatchNorm2d modules
    /// become <see cref="SyncBatchNorm"/> (same state_dict names, so checkpoints load either way).
    /// </summary>
    public void PrepareModel(nn.Module model, TrainConfig config)
    {
        if (config.Model.SyncBn && Group.Size > 1)
        {
            var n = SyncBatchNorm.convert_sync_batchnorm(model, Group);
            Console.WriteLine($"sync_bn: {n} batch norms compute their statistics over the global batch of {WorldSize} processes");
        }
    }

    /// <summary>Right after the config is parsed: every rank must hold the same one (<see cref="ConfigAgreement"/>).</summary>
    public void CheckConfig(TrainConfig config) => ConfigAgreement.Check(Group, config);

    /// <summary>After the weights are final for the start (fresh, pretrained or resumed): rank 0's parameters and
    /// buffers (model and loss) go to every rank, and the gradient buckets are laid out.</summary>
    public void Synchronize(nn.Module model, nn.Module lossState, optim.Optimizer optimizer)
    {
        GradientReducer.BroadcastState(Group, model);
        GradientReducer.BroadcastState(Group, lossState);
        reducer = Group.Size <= 1 ? null
            : optimizer is IFlatOptimizer { Flat: var flat } ? new GradientReducer(Group, flat)
            : new GradientReducer(Group, model.parameters());
        lossBuffers = Group.Size > 1 ? [.. lossState.buffers().Where(b => b.is_floating_point())] : [];
    }

    Tensor[] lossBuffers = [];

    /// <summary>After backward, before clipping and the optimizer: every gradient becomes its mean over ranks.</summary>
    public void AverageGradients() => reducer?.AverageGradients();

    /// <summary>After the optimizer step: state that a loss updates from its batch (center loss's class centers)
    /// becomes its mean over ranks, so that every rank keeps the same state as one process would.</summary>
    public void AverageLossState()
    {
        using var _ = no_grad();
        foreach (var b in lossBuffers)
        {
            Group.AllReduce(b);
            b.div_(WorldSize);
        }
    }

    /// <summary>
    /// One small all-reduce per step: the logged loss and loss terms become their means over ranks, and the
    /// ranks agree to stop when any of them was asked to (Ctrl+C reaches ranks at different moments; stopping at
    /// different steps would leave the others in a collective).
    /// </summary>
    public (double Loss, IReadOnlyDictionary<string, double> Terms, bool Stop) Agree(double loss, IReadOnlyDictionary<string, double> terms, bool stop)
    {
        if (Group.Size == 1) return (loss, terms, stop);
        var keys = terms.Keys.ToList();
        var values = new double[keys.Count + 2];
        values[0] = loss;
        for (var i = 0; i < keys.Count; i++) values[i + 1] = terms[keys[i]];
        values[^1] = stop ? 1 : 0;
        Group.AllReduce<double>(values);
        var mean = new Dictionary<string, double>();
        for (var i = 0; i < keys.Count; i++) mean[keys[i]] = values[i + 1] / WorldSize;
        return (values[0] / WorldSize, mean, values[^1] > 0);
    }

    /// <summary>A comment line for the run's <c>config.yaml</c> that records the world size (read back on resume).</summary>
    public string ConfigHeader => $"# world size: {WorldSize}\n";

    /// <summary>
    /// Resume check: the data order of a run depends only on the global batch (batch × processes × accumulate),
    /// so a run may continue on another number of processes when its global batch stays the same; otherwise
    /// this refuses, naming both.
    /// </summary>
    /// <exception cref="DistributedException">The global batch would change.</exception>
    public void CheckResume(RunPaths paths, TrainConfig config, string checkpointYaml, IReadOnlyList<string> checkpointOverrides)
    {
        var previousWorld = 1;
        if (File.Exists(paths.Config))
            foreach (var line in File.ReadLines(paths.Config).TakeWhile(l => l.StartsWith('#')))
                if (line.StartsWith("# world size: ", StringComparison.Ordinal)
                    && int.TryParse(line["# world size: ".Length..], NumberStyles.Integer, CultureInfo.InvariantCulture, out var w))
                    previousWorld = w;
        if (previousWorld == WorldSize) return;   // the same split of the same global batch, or a changed recipe (warned about)
        var checkpointConfig = ConfigLoader.Parse(checkpointYaml, paths.Last, checkpointOverrides);
        long before = (long)checkpointConfig.Data.BatchSize * previousWorld * checkpointConfig.Train.Accumulate;
        long now = (long)config.Data.BatchSize * WorldSize * config.Train.Accumulate;
        if (before != now)
            throw new DistributedException(
                $"--resume: {paths.Last} was trained with a global batch of {before} (data.batch_size {checkpointConfig.Data.BatchSize} x {previousWorld} processes x train.accumulate {checkpointConfig.Train.Accumulate}) " +
                $"but this run's is {now} ({config.Data.BatchSize} x {WorldSize} x {config.Train.Accumulate}); resume with the same global batch (the data order depends on it) or start a new run");
        Console.WriteLine($"note: resuming a {previousWorld}-process run on {WorldSize} processes with the same global batch of {now}");
    }
}
