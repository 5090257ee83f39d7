using System.Diagnostics;
using System.Globalization;
using Seg.Core.Losses;
using Seg.Core.Native;
using Seg.Core.Optim;
using Seg.Data;
using Seg.Data.Datasets;
using Seg.Models;
using Seg.Train.Checkpoints;
using Seg.Train.Cli;
using Seg.Train.Config;
using Seg.Train.Distributed;
using Seg.Train.Evaluation;
using Seg.Train.Reports;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Seg.Train.Training;

/// <summary>
/// The training loop, in the spirit of torchvision's reference <c>train.py</c>, in functions that read top to
/// bottom: <see cref="Setup"/> builds everything from the config (so a bad key fails before the first step);
/// <see cref="TrainLoop"/> runs the optimizer steps, each <see cref="BeginStep"/> (learning rate, loss schedule,
/// zeroed gradients), <see cref="ForwardBackward"/> per micro-batch (forward and loss under autocast, backward
/// through the loss scaler), <see cref="OptimizerStep"/> (gradient hook, clipping, step) and <see cref="EndStep"/>
/// (the step's one device wait); then it logs and calls <see cref="EvaluateAndSave"/>; <see cref="Finish"/> writes
/// the scores and the report. Everything a step depends on is a function of (seed, iteration) or saved in the
/// checkpoint (weights, optimizer state, CPU RNG state), so <c>--resume</c> ends bit-identical to an uninterrupted
/// run on the CPU.
/// </summary>
public static class Trainer
{
    /// <summary>Trains as <paramref name="request"/> says; <paramref name="stop"/> (Ctrl+C) saves a checkpoint and returns.
    /// With <paramref name="parallel"/> over several processes this is one rank of a data-parallel job: rank 0 writes
    /// the run folder, every rank trains on its slice of each global batch (see <see cref="DataParallel"/>).</summary>
    /// <exception cref="ConfigException">A bad config key or value.</exception>
    /// <exception cref="TrainingDivergedException">The loss became NaN or infinite.</exception>
    public static TrainOutcome Run(TrainRequest request, CancellationToken stop = default, DataParallel? parallel = null)
    {
        using var run = Setup(request, parallel ?? DataParallel.Alone);
        var interrupted = Progress.Run("train", run.Total, run.Start, progress => TrainLoop(run, progress, stop));
        if (interrupted) return new TrainOutcome(TrainStatus.Interrupted, run.Done, run.Paths, null);
        return Finish(run);
    }

    // ---- setup: everything that can fail on a bad config happens here, before training ----

    static TrainingRun Setup(TrainRequest request, DataParallel dp)
    {
        var config = ConfigLoader.Parse(request.ConfigYaml, request.Source, request.Overrides);
        dp.CheckConfig(config);
        var paths = RunFolder.Locate(request.Output, config.Name);
        // Refuse a folder it may not use before building anything. Rank 0 alone: the check takes run.lock for a moment,
        // and another rank doing the same could make rank 0's own Open below see the folder "in use".
        if (dp.IsMain) RunFolder.Check(paths, request.Start);
        var src = request.Source;
        var threads = TorchThreads.Apply(config.Train.Threads);
        // train.threads 0 on the CPU: settle 1 thread or all by timing steps (ranks of a data-parallel run wait for
        // each other, so their step times say little about their own thread count).
        var tuner = dp.WorldSize > 1 ? null : ThreadTuner.For(threads, config.Train.Threads);
        var device = dp.ResolveDevice(config.Train.Device, RunFactory.ResolveDevice(config.Train.Device, src));
        // Mixed precision: forward and loss under autocast, fp16 with a loss scaler (RunPrecision).
        var precision = RunPrecision.Resolve(config.Train.Precision, device);
        GpuSwitches.Apply(config.Train, device);
        manual_seed(config.Train.Seed);

        var trainSet = RunFactory.CreateDataset(config.Data, config.Data.TrainSplit, config.Data.TrainCount, config.DataSeed, src);
        var valSet = RunFactory.CreateDataset(config.Data, config.Data.ValSplit, config.Data.ValCount, config.DataSeed, src);
        SkippedSamples.Watch(trainSet, "train", Console.Error);
        SkippedSamples.Watch(valSet, "val", Console.Error);
        var trainPipeline = RunFactory.TrainPipeline(config.Data, src);
        var valPipeline = RunFactory.ValPipeline(config.Data, trainPipeline, src);
        if (trainSet.Count < config.Data.BatchSize)
            throw new ConfigException(src, "data.batch_size", $"{config.Data.BatchSize} exceeds the {trainSet.Count} training samples: training drops the " +
                                                              "last incomplete batch, so no step would run; lower data.batch_size");
        var numClasses = trainSet.NumClasses;
        var heads = new HeadHolder();
        var model = RunFactory.CreateModel(config.Model, numClasses, src, heads);
        var criterion = RunFactory.CreateLoss(config.Loss, trainSet.IgnoreIndex, numClasses, src, config.Model.Head, heads, config.Data.SoftLabels);
        model.to(device);
        criterion.to(device);
        dp.PrepareModel(model, config);
        var optimizer = RunFactory.CreateOptimizer(config.Optimizer, model.parameters());

        var run = new TrainingRun
        {
            Request = request, Config = config, Parallel = dp, Paths = paths, Threads = threads, Tuner = tuner, Device = device,
            Precision = precision, Scaler = precision.CreateScaler(), TrainSet = trainSet, ValSet = valSet,
            ValPipeline = valPipeline, Model = model, Criterion = criterion, Optimizer = optimizer,
        };
        try
        {
            // One run per folder from here on: a second run refuses, naming this one; a lock left by a killed run is taken over.
            run.Folder = dp.IsMain ? RunFolder.Open(paths, request.Start, Console.WriteLine) : null;
            if (request.Start == RunStart.Resume) Resume(run);
            else if (config.Model.Pretrained is not null) Console.WriteLine($"pretrained: {RunFactory.LoadPretrained(model, config.Model)}");
            dp.Synchronize(model, criterion, optimizer);   // every rank starts from rank 0's weights

            run.TrainLoader = new SegmentationLoader(trainSet, trainPipeline,
                dp.ShardTraining(new LoaderOptions { BatchSize = config.Data.BatchSize, Workers = config.Data.Workers, Seed = config.Train.Seed, Shuffle = true, DropLast = true }, config.Train.Accumulate), device);
            run.ValLoader = new SegmentationLoader(valSet, valPipeline,
                dp.ShardEvaluation(new LoaderOptions { BatchSize = config.Eval.BatchSize, Workers = config.Data.Workers, Seed = config.Train.Seed, Shuffle = false, DropLast = false }), device);

            run.Folder?.WriteConfig(EffectiveConfig(request, dp.WorldSize > 1 ? dp.ConfigHeader : ""));
            var resumeAt = request.Resume ? run.Start : (long?)null;
            run.Log = dp.IsMain ? TrainLog.Open(paths.TrainLog, criterion.Terms.Select(t => t.Name).ToList(), resumeAt) : null;
            if (dp.IsMain) EvalLog.Start(paths.EvalLog, resumeAt);
            run.Board = dp.IsMain ? utils.tensorboard.SummaryWriter(paths.TensorBoard, createRunName: false) : null;

            // Before the run's first line, so that nobody misses it: validation on training images scores nothing new.
            run.SplitWarning = SplitOverlap.Warning(trainSet, valSet);
            if (run.SplitWarning is not null) Console.Error.WriteLine("WARNING: " + run.SplitWarning);
            Console.WriteLine($"{config.Name}: {config.Model.Name} on {(device.type == DeviceType.CPU ? "CPU" : device.ToString())}, {threads}, {precision.Describe()}, {numClasses} classes, {trainSet.Count} train / {valSet.Count} val images, " +
                              $"{run.Total} iterations{(run.Start > 0 ? $", resuming at {run.Start}" : "")} -> {Path.GetFullPath(paths.Root)}");
            if (config.Model.EffectiveOutputStride is { } stride && stride != config.Model.OutputStride)
                Console.WriteLine($"note: {config.Model.Name} runs at output stride {stride}, not model.output_stride {config.Model.OutputStride}: " +
                                  "a ConvNeXt encoder's down-sampling cannot be dilated");
            run.WaitBefore = run.TrainLoader.Stats.WaitTime;
            return run;
        }
        catch
        {
            run.Dispose();
            throw;
        }
    }

    /// <summary>Weights, optimizer, loss state, RNG, best score and scaler from <c>last.ckpt</c>.</summary>
    static void Resume(TrainingRun run)
    {
        var paths = run.Paths;
        try { CheckpointFile.ReadState(paths.Last); }
        catch (InvalidDataException e) { throw new InvalidDataException(e.Message + " " + FallBack(paths), e); }
        var state = CheckpointFile.Load(paths.Last, run.Model, run.Optimizer, run.Criterion);
        (run.Start, run.BestMeanIoU, run.BestIteration) = (state.Iteration, state.BestMeanIoU, state.BestIteration);
        CheckpointFile.RestoreRng(state.RngState);
        if (run.Scaler is not null && state.Scaler is { } scalerState) run.Scaler.Restore(scalerState);
        if (state.ConfigYaml != run.Request.ConfigYaml || !state.Overrides.SequenceEqual(run.Request.Overrides))
            Console.Error.WriteLine($"warning: resuming {paths.Last} with a config that differs from the one it was trained with");
        run.Parallel.CheckResume(paths, run.Config, state.ConfigYaml, state.Overrides);
    }

    // ---- the loop: one optimizer step per k micro-batches, then log, evaluate and save ----

    /// <summary>Trains from <see cref="TrainingRun.Start"/> to the end or to an agreed stop; true when stopped.</summary>
    static bool TrainLoop(TrainingRun run, IProgressSink progress, CancellationToken stop)
    {
        run.Done = run.Start;
        if (run.Start >= run.Total) return false;
        var config = run.Config;
        var accumulate = config.Train.Accumulate;
        run.Model.train();
        run.TrainWatch.Start();
        var step = new StepAccumulator();
        double lr = 0;
        try
        {
            foreach (var batch in run.TrainLoader.Iterate(run.Start * accumulate))
            {
                var iteration = batch.Iteration / accumulate;   // 0-based index of this optimizer step
                var micro = (int)(batch.Iteration % accumulate);
                run.Done = iteration + 1;
                StepResult result;
                using (batch)
                using (NewDisposeScope())
                {
                    if (micro == 0) lr = BeginStep(run, iteration, step);
                    ForwardBackward(run, batch, step);
                    if (micro < accumulate - 1) continue;
                    OptimizerStep(run);
                    result = EndStep(run, step, stop);
                }
                run.StepsRun++;
                if (run.Tuner?.AfterStep(Stopwatch.GetElapsedTime(run.StepStart)) is { } retuned) progress.Message($"threads: now {retuned}");

                LogStep(run, result, lr, progress);
                EvaluateAndSave(run, progress);
                if (run.Done >= run.Total) return false;
                if (result.Stop)
                {
                    run.Log?.Flush();
                    if (run.Parallel.IsMain) Save(run, run.Paths.Last);
                    return true;
                }
            }
            return false;
        }
        finally
        {
            run.TrainWatch.Stop();
            step.Dispose();
        }
    }

    /// <summary>The step's learning rate and loss-schedule progress, gradients zeroed; returns the learning rate.</summary>
    static double BeginStep(TrainingRun run, long iteration, StepAccumulator step)
    {
        run.Tuner?.BeforeStep();
        run.StepStart = Stopwatch.GetTimestamp();
        var lr = LrSchedule.At(run.Config.Schedule, run.Config.Optimizer.Lr, iteration, run.Total);
        foreach (var group in ((OptimizerHelper)run.Optimizer).ParamGroups) group.LearningRate = lr;
        run.Criterion.Progress = (double)iteration / run.Total;
        run.Optimizer.zero_grad();
        step.Clear();
        return lr;
    }

    /// <summary>
    /// One micro-batch: forward and loss under autocast (the auxiliary head's loss added with its weight), then
    /// backward (through the loss scaler in fp16). Gradients of k micro-batches are summed: each backward gets
    /// loss / k, so that the step's gradient is that of the mean loss over its global batch (k = 1: the loss itself).
    /// </summary>
    static void ForwardBackward(TrainingRun run, SegmentationBatch batch, StepAccumulator step)
    {
        var (criterion, accumulate) = (run.Criterion, run.Config.Train.Accumulate);
        Tensor loss;
        IReadOnlyDictionary<string, double> termValues;
        using (run.Precision.Autocast(run.Device))
        {
            if (run.Model is ISegmentationModel { HasAuxHead: true } auxModel)
            {
                var (output, auxOutput) = auxModel.ForwardWithAux(batch.Images);
                loss = criterion.forward(output, batch.Labels);
                termValues = criterion.LastValues;
                loss = loss + run.Config.Model.AuxWeight * criterion.forward(auxOutput!, batch.Labels);
            }
            else
            {
                loss = criterion.forward(run.Model.forward(batch.Images), batch.Labels);
                termValues = criterion.LastValues;
            }
        }
        if (accumulate > 1) loss = loss / accumulate;
        (run.Scaler?.Scale(loss) ?? loss).backward();
        step.Add(loss, termValues, accumulate);
        run.ImagesSeen += batch.Count * run.Parallel.WorldSize;
    }

    /// <summary>
    /// The optimizer step on the summed gradients: the gradient hook (data-parallel all-reduce), clipping of the
    /// true (unscaled) gradients, then the step (through the scaler in fp16, which skips a step with inf or NaN
    /// gradients and backs its scale off), and the loss state's average over ranks.
    /// </summary>
    static void OptimizerStep(TrainingRun run)
    {
        run.Parallel.AverageGradients();
        if (run.Config.Train.GradClip > 0)
        {
            run.Scaler?.Unscale(run.Optimizer);   // clip the true gradients, not the scaled ones
            if (run.Optimizer is IFlatOptimizer flat) flat.Flat.ClipGradNorm(run.Config.Train.GradClip).Dispose();
            else nn.utils.clip_grad_norm_(run.Model.parameters(), run.Config.Train.GradClip);
        }
        if (run.Scaler is null) run.Optimizer.step();
        else
        {
            run.Scaler.Step(run.Optimizer);
            run.Scaler.Update();
        }
        run.Parallel.AverageLossState();
    }

    /// <summary>
    /// The step's one wait for the device: the loss read once the whole step is queued, so that the device never
    /// waits for the host to queue the backward pass; the values and Ctrl+C agreed by every rank. A diverged step
    /// has updated the weights in memory, but the run stops here and no checkpoint is written from them.
    /// </summary>
    static StepResult EndStep(TrainingRun run, StepAccumulator step, CancellationToken stop)
    {
        var (lossValue, termValues) = step.Read(run.Config.Train.Accumulate);
        var (agreedLoss, agreedTerms, stopNow) = run.Parallel.Agree(lossValue, termValues, stop.IsCancellationRequested);
        if (!double.IsFinite(agreedLoss)) throw Diverged(run.Done, agreedTerms, agreedLoss);
        return new StepResult(agreedLoss, agreedTerms, stopNow);
    }

    static void LogStep(TrainingRun run, StepResult result, double lr, IProgressSink progress)
    {
        var done = run.Done;
        if (done % run.Config.Train.LogEvery == 0 || done == run.Total)
        {
            LabelChecks.ThrowIfAnyFailed();   // the losses' label checks, deferred on devices other than the CPU
            run.Log?.Append(done, result.Loss, result.Terms, lr);
            run.Board?.add_scalar("train/loss", (float)result.Loss, (int)done);
            run.Board?.add_scalar("train/lr", (float)lr, (int)done);
            foreach (var (term, value) in result.Terms) run.Board?.add_scalar($"train/{term}", (float)value, (int)done);
        }
        progress.Update(done, $"loss {result.Loss.ToString("F4", CultureInfo.InvariantCulture)} lr {lr.ToString("0.00e0", CultureInfo.InvariantCulture)}");
    }

    // ---- evaluate and save ----

    /// <summary>Every <c>eval_every</c> steps and at the end: validation, <c>best.ckpt</c> on a new best; every
    /// <c>checkpoint_every</c> steps and at the end: <c>last.ckpt</c>.</summary>
    static void EvaluateAndSave(TrainingRun run, IProgressSink progress)
    {
        var (done, train) = (run.Done, run.Config.Train);
        var main = run.Parallel.IsMain;
        if ((train.EvalEvery > 0 && done % train.EvalEvery == 0) || done == run.Total)
        {
            run.TrainWatch.Stop();
            var eval = Evaluate(run);
            run.EvalTime += eval.Elapsed;
            var m = eval.Metrics;
            if (main) EvalLog.Append(run.Paths.EvalLog, done, m);
            run.Board?.add_scalar("val/mIoU", (float)m.MeanIoU, (int)done);
            run.Board?.add_scalar("val/image_mIoU", (float)m.MeanIoUPerImageGtOrPredicted, (int)done);
            run.Board?.add_scalar("val/aAcc", (float)m.PixelAccuracy, (int)done);
            var isBest = m.MeanIoU > run.BestMeanIoU;
            if (isBest) (run.BestMeanIoU, run.BestIteration) = (m.MeanIoU, done);
            progress.Message($"iteration {done}: val mIoU {m.MeanIoU:P2}, image mIoU {m.MeanIoUPerImageGtOrPredicted:P2}, aAcc {m.PixelAccuracy:P2}{(isBest ? " (best)" : "")}");
            if (isBest && main) Save(run, run.Paths.Best);
            run.TrainWatch.Start();
        }
        if ((done % train.CheckpointEvery == 0 || done == run.Total) && main)
        {
            run.Log!.Flush();
            Save(run, run.Paths.Last);
        }
    }

    static EvalResult Evaluate(TrainingRun run)
    {
        using (run.Precision.Autocast(run.Device))
            run.LastEval = Evaluator.Evaluate(run.Model, run.ValLoader, run.Config.Eval, run.TrainSet.ClassNames, run.TrainSet.IgnoreIndex, group: run.Parallel.Group);
        return run.LastEval;
    }

    static void Save(TrainingRun run, string path)
    {
        var state = new CheckpointState(run.Done, run.BestMeanIoU, run.BestIteration, run.Request.ConfigYaml, run.Request.Overrides,
            run.TrainSet.ClassNames, run.TrainSet.Palette.Select(c => new[] { (int)c.R, c.G, c.B }).ToList(), CheckpointFile.CaptureRng(),
            run.Precision.Name, run.Scaler?.State);
        CheckpointFile.Save(path, state, run.Model, run.Optimizer, run.Criterion);
        run.Folder!.CheckpointSaved(path);
    }

    // ---- final scores and report ----

    static TrainOutcome Finish(TrainingRun run)
    {
        var (config, trainSet, valSet, total) = (run.Config, run.TrainSet, run.ValSet, run.Total);
        var lastEval = run.LastEval ?? Evaluate(run);
        if (!run.Parallel.IsMain)
        {
            lastEval.DisposeSamples();
            return new TrainOutcome(TrainStatus.Completed, total, run.Paths, lastEval.Metrics.MeanIoU);
        }
        var info = RunInfo.From(config, $"{trainSet.Count} train / {valSet.Count} val images", run.Device, run.Tuner?.Threads ?? run.Threads.Threads,
            Path.GetFullPath(run.Paths.Last), run.SplitWarning is null ? [] : [run.SplitWarning], run.Precision.Name);
        var skipped = SkippedSamples.Of(trainSet, valSet);
        MetricsJson.Write(run.Paths.Metrics, lastEval.Metrics, total, info, lastEval.NonFinitePixels, skipped);
        var waited = run.TrainLoader.Stats.WaitTime - run.WaitBefore;
        var trainTime = run.TrainWatch.Elapsed;
        var timing = new RunTiming(run.StepsRun, run.ImagesSeen, trainTime, run.EvalTime,
            trainTime > TimeSpan.Zero ? 100.0 * waited.TotalSeconds / trainTime.TotalSeconds : 0);
        ReportWriter.Write(run.Paths, new ReportData(config.Name, total, null, lastEval, trainSet.Palette, run.ValPipeline.Normalization, trainSet.IgnoreIndex, timing, info)
            { Skipped = skipped });
        if (skipped.Count > 0) Console.Error.WriteLine($"warning: {skipped.Count} bad sample(s) were skipped (data.on_bad_sample: skip); see the report");
        lastEval.DisposeSamples();
        Console.WriteLine($"done: val mIoU {lastEval.Metrics.MeanIoU:P2} (best {run.BestMeanIoU:P2} at {run.BestIteration}); report: {Path.GetFullPath(run.Paths.ReportHtml)}");
        return new TrainOutcome(TrainStatus.Completed, total, run.Paths, lastEval.Metrics.MeanIoU);
    }

    static TrainingDivergedException Diverged(long iteration, IReadOnlyDictionary<string, double> terms, double total)
    {
        foreach (var (name, value) in terms)
            if (!double.IsFinite(value)) return new TrainingDivergedException(iteration, name, value);
        return new TrainingDivergedException(iteration, "loss", total);
    }

    // What to do when last.ckpt is damaged: best.ckpt is a complete resume point too (weights, optimizer, loss
    // state, RNG), only older.
    static string FallBack(RunPaths paths)
    {
        if (!File.Exists(paths.Best)) return "There is no best.ckpt to fall back on; train without --resume to start over.";
        return CheckpointFile.CanResumeFrom(paths.Best, out var best, out var reason)
            ? $"{paths.Best} is intact (iteration {best!.Iteration}): to resume from there, copy it over {paths.Last} and run with --resume again."
            : $"{paths.Best} cannot stand in for it ({reason}).";
    }

    // The config the run uses, overrides applied, so that `eval --config RUN/config.yaml` builds the same model. The
    // first line stays RunFolder.ConfigHeader (it marks the folder as a Seg run); other comment lines follow it.
    static string EffectiveConfig(TrainRequest request, string moreHeader) =>
        $"{RunFolder.ConfigHeader}{request.Source}\n" + moreHeader +
        (request.Overrides.Count > 0 ? $"# with {string.Join(" ", request.Overrides.Select(o => $"--set {o}"))} applied below\n" : "") +
        ConfigLoader.EffectiveYaml(request.ConfigYaml, request.Source, request.Overrides);
}
