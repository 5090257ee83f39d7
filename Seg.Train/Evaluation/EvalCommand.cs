using Seg.Data;
using Seg.Models;
using Seg.Train.Checkpoints;
using Seg.Train.Cli;
using Seg.Train.Config;
using Seg.Train.Reports;
using Seg.Train.Training;
using TorchSharp;

namespace Seg.Train.Evaluation;

/// <summary>
/// <c>eval</c>: scores a checkpoint (a <c>.ckpt</c>, or any weight file <c>StateDict</c> reads) on the config's
/// validation split with the config's <c>eval</c> settings, and writes <c>metrics.json</c> and the reports. Without a
/// config file a <c>.ckpt</c> supplies its own (the training config with its <c>--set</c> overrides), as for
/// <c>predict</c> and <c>export</c>; <c>--set</c> overrides then apply on top.
/// </summary>
public static class EvalCommand
{
    /// <summary>Evaluates with the config file <paramref name="configPath"/>, or the checkpoint's own config when it
    /// is null; returns the metrics' run paths.</summary>
    /// <param name="configPath">The YAML config (dataset, model, eval settings), or null for a <c>.ckpt</c>'s own.</param>
    /// <param name="overrides"><c>--set</c> assignments.</param>
    /// <param name="checkpoint">A <c>.ckpt</c> or weight file.</param>
    /// <param name="output">The report folder (null: the run's <c>eval/</c>).</param>
    /// <param name="ct">Stops between batches.</param>
    /// <param name="device"><c>--device</c> (null: the config's <c>train.device</c>).</param>
    /// <exception cref="ArgumentException">No config file for a weight file, which carries no config.</exception>
    public static (EvalResult Result, RunPaths Paths) Run(string? configPath, IReadOnlyList<string> overrides, string checkpoint,
        string? output, CancellationToken ct = default, string? device = null)
    {
        if (!File.Exists(checkpoint)) throw new FileNotFoundException($"--checkpoint: no such file: {checkpoint}", checkpoint);
        var config = configPath is not null ? ConfigLoader.Load(configPath, overrides) : CheckpointConfig(checkpoint, overrides);
        configPath ??= checkpoint;
        var paths = new RunPaths(Path.GetFullPath(output ?? Path.Combine(Path.GetDirectoryName(Path.GetDirectoryName(Path.GetFullPath(checkpoint)))!, "eval")));
        RunFolder.CheckEvalOutput(paths);   // before evaluating: replace nothing that Seg did not write
        var threads = Seg.Core.Native.TorchThreads.Apply(config.Train.Threads);
        Console.WriteLine($"eval: {threads}");
        var target = device is null ? RunFactory.ResolveDevice(config.Train.Device, configPath) : RunFactory.ResolveDeviceOption(device);
        var valSet = RunFactory.CreateDataset(config.Data, config.Data.ValSplit, config.Data.ValCount, config.DataSeed, configPath);
        SkippedSamples.Watch(valSet, "val", Console.Error);
        var pipeline = RunFactory.ValPipeline(config.Data, RunFactory.TrainPipeline(config.Data, configPath), configPath);
        var model = RunFactory.CreateModel(config.Model, valSet.NumClasses, configPath);

        long iterations = 0;
        string? trainedIn = null;
        if (Path.GetExtension(checkpoint) == ".ckpt")
        {
            var state = CheckpointFile.Load(checkpoint, model);
            (iterations, trainedIn) = (state.Iteration, state.Precision);
        }
        else
            StateDict.LoadInto(model, checkpoint, strict: true);
        model.to(target);
        var precision = RunPrecision.ForInference(config.Train.Precision, overrides, trainedIn, target);
        Console.WriteLine($"eval: precision {precision.Describe()}");

        using var loader = new SegmentationLoader(valSet, pipeline,
            new LoaderOptions { BatchSize = config.Eval.BatchSize, Workers = config.Data.Workers, Seed = config.Train.Seed, Shuffle = false, DropLast = false }, target);
        var result = Progress.Run("eval", loader.EvalBatches, 0, progress =>
        {
            using (precision.Autocast(target))
                return Evaluator.Evaluate(model, loader, config.Eval, valSet.ClassNames, valSet.IgnoreIndex, ct, (done, _) => progress.Update(done, ""));
        });
        Directory.CreateDirectory(paths.Root);
        var run = RunInfo.From(config, $"{valSet.Count} val images (split '{config.Data.ValSplit}')", target, threads.Threads, Path.GetFullPath(checkpoint),
            precision: precision.Name);
        var skipped = SkippedSamples.Of(valSet);
        MetricsJson.Write(paths.Metrics, result.Metrics, iterations, run, result.NonFinitePixels, skipped);
        ReportWriter.Write(paths, new ReportData($"{config.Name} (eval)", iterations, Path.GetFullPath(checkpoint), result,
            valSet.Palette, pipeline.Normalization, valSet.IgnoreIndex, null, run) { Skipped = skipped });
        return (result, paths);
    }

    // The config a .ckpt was trained with (its overrides applied first, then this command's).
    static TrainConfig CheckpointConfig(string checkpoint, IReadOnlyList<string> overrides)
    {
        if (Path.GetExtension(checkpoint) != ".ckpt")
            throw new ArgumentException($"--checkpoint {checkpoint} is a weight file, which carries no config: give the training config with --config");
        var state = CheckpointFile.ReadState(checkpoint);
        return ConfigLoader.Parse(state.ConfigYaml, checkpoint, state.Overrides.Concat(overrides));
    }
}
