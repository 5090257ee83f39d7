using System.Diagnostics;
using System.Globalization;
using Seg.Core.Losses;
using Seg.Core.Native;
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
/// The training loop, in the spirit of torchvision's reference <c>train.py</c>: build everything from the config
/// (so a bad key fails before the first step), then step, log, evaluate and checkpoint. Everything a step depends
/// on is a function of (seed, iteration) or saved in the checkpoint (weights, optimizer state, CPU RNG state), so
/// <c>--resume</c> ends bit-identical to an uninterrupted run on the CPU.
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
        // ---- setup: everything that can fail on a bad config happens here, before training ----
        var config = ConfigLoader.Parse(request.ConfigYaml, request.Source, request.Overrides);
        var dp = parallel ?? DataParallel.Alone;
        var main = dp.IsMain;   // rank 0 alone writes files
        dp.CheckConfig(config);
        var accumulate = config.Train.Accumulate;
        var paths = RunFolder.Locate(request.Output, config.Name);
        var mode = request.Start;
        RunFolder.Check(paths, mode);   // refuse a folder it may not use before building anything
        var src = request.Source;
        var threads = TorchThreads.Apply(config.Train.Threads);
        // train.threads 0 on the CPU: settle 1 thread or all by timing steps (ranks of a data-parallel run wait for
        // each other, so their step times say little about their own thread count).
        var tuner = dp.WorldSize > 1 ? null : ThreadTuner.For(threads, config.Train.Threads);
        long stepStart = 0;
        var device = dp.ResolveDevice(config.Train.Device, RunFactory.ResolveDevice(config.Train.Device, src));
        var total = config.Train.Iterations;
        // Mixed precision: forward and loss under autocast, fp16 with a loss scaler (RunPrecision).
        var precision = RunPrecision.Resolve(config.Train.Precision, device);
        var scaler = precision.CreateScaler();
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
        var auxModel = model is ISegmentationModel { HasAuxHead: true } aux ? aux : null;

        // One run per folder from here on: a second run refuses, naming this one; a lock left by a killed run is taken over.
        using var folder = main ? RunFolder.Open(paths, mode, Console.WriteLine) : null;

        long start = 0, bestIteration = 0;
        var bestMeanIoU = -1.0;
        if (mode == RunStart.Resume)
        {
            try { CheckpointFile.ReadState(paths.Last); }
            catch (InvalidDataException e) { throw new InvalidDataException(e.Message + " " + FallBack(paths), e); }
            var state = CheckpointFile.Load(paths.Last, model, optimizer, criterion);
            (start, bestMeanIoU, bestIteration) = (state.Iteration, state.BestMeanIoU, state.BestIteration);
            CheckpointFile.RestoreRng(state.RngState);
            if (scaler is not null && state.Scaler is { } scalerState) scaler.Restore(scalerState);
            if (state.ConfigYaml != request.ConfigYaml || !state.Overrides.SequenceEqual(request.Overrides))
                Console.Error.WriteLine($"warning: resuming {paths.Last} with a config that differs from the one it was trained with");
            dp.CheckResume(paths, config, state.ConfigYaml, state.Overrides);
        }
        else if (config.Model.Pretrained is not null)
        {
            Console.WriteLine($"pretrained: {RunFactory.LoadPretrained(model, config.Model)}");
        }
        dp.Synchronize(model, criterion);   // every rank starts from rank 0's weights

        using var trainLoader = new SegmentationLoader(trainSet, trainPipeline,
            dp.ShardTraining(new LoaderOptions { BatchSize = config.Data.BatchSize, Workers = config.Data.Workers, Seed = config.Train.Seed, Shuffle = true, DropLast = true }, accumulate), device);
        using var valLoader = new SegmentationLoader(valSet, valPipeline,
            dp.ShardEvaluation(new LoaderOptions { BatchSize = config.Eval.BatchSize, Workers = config.Data.Workers, Seed = config.Train.Seed, Shuffle = false, DropLast = false }), device);

        folder?.WriteConfig(EffectiveConfig(request, dp.WorldSize > 1 ? dp.ConfigHeader : ""));
        var termNames = criterion.Terms.Select(t => t.Name).ToList();
        using var log = main ? TrainLog.Open(paths.TrainLog, termNames, request.Resume ? start : null) : null;
        if (main) EvalLog.Start(paths.EvalLog, request.Resume ? start : null);
        var board = main ? utils.tensorboard.SummaryWriter(paths.TensorBoard, createRunName: false) : null;
        var classNames = trainSet.ClassNames;

        EvalResult Evaluate()
        {
            using (precision.Autocast(device))
                return Evaluator.Evaluate(model, valLoader, config.Eval, classNames, trainSet.IgnoreIndex, group: dp.Group);
        }

        void Save(string path, long iteration)
        {
            var state = new CheckpointState(iteration, bestMeanIoU, bestIteration, request.ConfigYaml, request.Overrides,
                classNames, trainSet.Palette.Select(c => new[] { (int)c.R, c.G, c.B }).ToList(), CheckpointFile.CaptureRng(),
                precision.Name, scaler?.State);
            CheckpointFile.Save(path, state, model, optimizer, criterion);
            folder!.CheckpointSaved(path);
        }

        // Before the run's first line, so that nobody misses it: validation on training images scores nothing new.
        var splitWarning = SplitOverlap.Warning(trainSet, valSet);
        if (splitWarning is not null) Console.Error.WriteLine("WARNING: " + splitWarning);
        Console.WriteLine($"{config.Name}: {config.Model.Name} on {(device.type == DeviceType.CPU ? "CPU" : device.ToString())}, {threads}, {precision.Describe()}, {numClasses} classes, {trainSet.Count} train / {valSet.Count} val images, " +
                          $"{total} iterations{(start > 0 ? $", resuming at {start}" : "")} -> {Path.GetFullPath(paths.Root)}");

        // ---- the loop ----
        var trainWatch = new Stopwatch();
        var evalTime = TimeSpan.Zero;
        var waitBefore = trainLoader.Stats.WaitTime;
        long stepsRun = 0, imagesSeen = 0;
        EvalResult? lastEval = null;
        var interrupted = false;
        var stopAgreed = false;   // Ctrl+C, agreed by every rank at the same step
        var done = start;

        Progress.Run("train", total, start, progress =>
        {
            if (start >= total) return 0;
            model.train();
            trainWatch.Start();
            double lr = 0;
            Tensor? stepLoss = null;                            // sum over this step's micro-batches of loss / k
            var stepTerms = new Dictionary<string, double>();   // the same for the terms
            foreach (var batch in trainLoader.Iterate(start * accumulate))
            {
                var iteration = batch.Iteration / accumulate;   // 0-based index of this optimizer step
                var micro = (int)(batch.Iteration % accumulate);
                done = iteration + 1;
                double lossValue;
                IReadOnlyDictionary<string, double> termValues;
                using (batch)
                using (var scope = NewDisposeScope())
                {
                    if (micro == 0)
                    {
                        tuner?.BeforeStep();
                        stepStart = Stopwatch.GetTimestamp();
                        lr = LrSchedule.At(config.Schedule, config.Optimizer.Lr, iteration, total);
                        foreach (var group in ((OptimizerHelper)optimizer).ParamGroups) group.LearningRate = lr;
                        criterion.Progress = (double)iteration / total;
                        optimizer.zero_grad();
                        stepLoss?.Dispose();
                        stepLoss = null;
                        stepTerms.Clear();
                    }

                    Tensor loss;
                    using (precision.Autocast(device))
                    {
                        if (auxModel is null)
                        {
                            loss = criterion.forward(model.forward(batch.Images), batch.Labels);
                            termValues = criterion.LastValues;
                        }
                        else
                        {
                            var (output, auxOutput) = auxModel.ForwardWithAux(batch.Images);
                            loss = criterion.forward(output, batch.Labels);
                            termValues = criterion.LastValues;
                            loss = loss + config.Model.AuxWeight * criterion.forward(auxOutput!, batch.Labels);
                        }
                    }
                    // Gradients of k micro-batches are summed: each backward gets loss / k, so that the step's
                    // gradient is that of the mean loss over its global batch (k = 1: the loss itself, same bits).
                    if (accumulate > 1) loss = loss / accumulate;
                    (scaler?.Scale(loss) ?? loss).backward();
                    stepLoss = stepLoss is null ? loss.detach().DetachFromDisposeScope() : ReplaceSum(stepLoss, loss);
                    foreach (var (term, value) in termValues) stepTerms[term] = stepTerms.GetValueOrDefault(term) + value / accumulate;
                    imagesSeen += batch.Count * dp.WorldSize;
                    if (micro < accumulate - 1) continue;

                    dp.AverageGradients();
                    if (config.Train.GradClip > 0)
                    {
                        scaler?.Unscale(optimizer);   // clip the true gradients, not the scaled ones
                        nn.utils.clip_grad_norm_(model.parameters(), config.Train.GradClip);
                    }
                    if (scaler is null) optimizer.step();
                    else
                    {
                        scaler.Step(optimizer);   // skipped when a gradient is inf or NaN; the scale then backs off
                        scaler.Update();
                    }
                    dp.AverageLossState();
                    // The step's one wait for the device: read the loss once the whole step is queued, so that the
                    // device never waits for the host to queue the backward pass. A diverged step has updated the
                    // weights in memory, but the run stops here and no checkpoint is written from them.
                    lossValue = stepLoss.ToDouble();
                    termValues = accumulate > 1 ? new Dictionary<string, double>(stepTerms) : termValues;
                    bool stopNow;
                    (lossValue, termValues, stopNow) = dp.Agree(lossValue, termValues, stop.IsCancellationRequested);
                    if (stopNow) stopAgreed = true;
                    if (!double.IsFinite(lossValue)) throw Diverged(done, termValues, lossValue);
                }
                stepsRun++;
                if (tuner?.AfterStep(Stopwatch.GetElapsedTime(stepStart)) is { } retuned) progress.Message($"threads: now {retuned}");

                if (done % config.Train.LogEvery == 0 || done == total)
                {
                    LabelChecks.ThrowIfAnyFailed();   // the losses' label checks, deferred on devices other than the CPU
                    log?.Append(done, lossValue, termValues, lr);
                    board?.add_scalar("train/loss", (float)lossValue, (int)done);
                    board?.add_scalar("train/lr", (float)lr, (int)done);
                    foreach (var (term, value) in termValues) board?.add_scalar($"train/{term}", (float)value, (int)done);
                }
                progress.Update(done, $"loss {lossValue.ToString("F4", CultureInfo.InvariantCulture)} lr {lr.ToString("0.00e0", CultureInfo.InvariantCulture)}");

                if ((config.Train.EvalEvery > 0 && done % config.Train.EvalEvery == 0) || done == total)
                {
                    trainWatch.Stop();
                    lastEval = Evaluate();
                    evalTime += lastEval.Elapsed;
                    var m = lastEval.Metrics;
                    if (main) EvalLog.Append(paths.EvalLog, done, m);
                    board?.add_scalar("val/mIoU", (float)m.MeanIoU, (int)done);
                    board?.add_scalar("val/image_mIoU", (float)m.MeanIoUPerImageGtOrPredicted, (int)done);
                    board?.add_scalar("val/aAcc", (float)m.PixelAccuracy, (int)done);
                    var isBest = m.MeanIoU > bestMeanIoU;
                    if (isBest) (bestMeanIoU, bestIteration) = (m.MeanIoU, done);
                    progress.Message($"iteration {done}: val mIoU {m.MeanIoU:P2}, image mIoU {m.MeanIoUPerImageGtOrPredicted:P2}, aAcc {m.PixelAccuracy:P2}{(isBest ? " (best)" : "")}");
                    if (isBest && main) Save(paths.Best, done);
                    trainWatch.Start();
                }
                if ((done % config.Train.CheckpointEvery == 0 || done == total) && main)
                {
                    log!.Flush();
                    Save(paths.Last, done);
                }
                if (done >= total) break;
                if (stopAgreed)
                {
                    log?.Flush();
                    if (main) Save(paths.Last, done);
                    interrupted = true;
                    break;
                }
            }
            trainWatch.Stop();
            stepLoss?.Dispose();
            return 0;
        });

        if (interrupted) return new TrainOutcome(TrainStatus.Interrupted, done, paths, null);

        // ---- final scores and report ----
        lastEval ??= Evaluate();
        if (!main)
        {
            lastEval.DisposeSamples();
            return new TrainOutcome(TrainStatus.Completed, total, paths, lastEval.Metrics.MeanIoU);
        }
        var run = RunInfo.From(config, $"{trainSet.Count} train / {valSet.Count} val images", device, tuner?.Threads ?? threads.Threads,
            Path.GetFullPath(paths.Last), splitWarning is null ? [] : [splitWarning], precision.Name);
        var skipped = SkippedSamples.Of(trainSet, valSet);
        MetricsJson.Write(paths.Metrics, lastEval.Metrics, total, run, lastEval.NonFinitePixels, skipped);
        var waited = trainLoader.Stats.WaitTime - waitBefore;
        var timing = new RunTiming(stepsRun, imagesSeen, trainWatch.Elapsed, evalTime,
            trainWatch.Elapsed > TimeSpan.Zero ? 100.0 * waited.TotalSeconds / trainWatch.Elapsed.TotalSeconds : 0);
        ReportWriter.Write(paths, new ReportData(config.Name, total, null, lastEval, trainSet.Palette, valPipeline.Normalization, trainSet.IgnoreIndex, timing, run)
            { Skipped = skipped });
        if (skipped.Count > 0) Console.Error.WriteLine($"warning: {skipped.Count} bad sample(s) were skipped (data.on_bad_sample: skip); see the report");
        lastEval.DisposeSamples();
        Console.WriteLine($"done: val mIoU {lastEval.Metrics.MeanIoU:P2} (best {bestMeanIoU:P2} at {bestIteration}); report: {Path.GetFullPath(paths.ReportHtml)}");
        return new TrainOutcome(TrainStatus.Completed, total, paths, lastEval.Metrics.MeanIoU);
    }

    // stepLoss + loss as a new tensor outside the step's dispose scope, freeing the old sum.
    static Tensor ReplaceSum(Tensor sum, Tensor loss)
    {
        var next = (sum + loss.detach()).DetachFromDisposeScope();
        sum.Dispose();
        return next;
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
