using System.Diagnostics;
using System.Runtime.ExceptionServices;
using Seg.Data.Datasets;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Data;

/// <summary>
/// Turns a dataset and a transform pipeline into batches on a device, prepared ahead by worker threads.
/// <para>Order and randomness are functions of the seed only: epoch e visits a permutation seeded by
/// (seed, e) and sample i's augmentation draws from a stream seeded by (seed, e, i). Training iteration t is
/// therefore batch t mod <see cref="BatchesPerEpoch"/> of epoch t div <see cref="BatchesPerEpoch"/>, and
/// <see cref="Iterate"/> can start at any t without touching earlier data, giving the same batches as a run that
/// got there from 0.</para>
/// <para>In a data-parallel job (<see cref="LoaderOptions.WorldSize"/> &gt; 1) or with gradient accumulation, an
/// optimizer step's global batch is the next B·W·k samples of the epoch's order, and this rank's micro-batch m of
/// the step is its slice [m·B·W + r·B, m·B·W + (r+1)·B): the samples of step t, their order and their augmentation
/// depend on the global batch B·W·k only, never on how it is split over processes and micro-batches.</para>
/// <para>Memory is bounded: at most <see cref="LoaderOptions.Prefetch"/> batches are queued or being built.
/// Leaving a <c>foreach</c>, cancelling the token or disposing the loader stops the workers and frees the
/// batches nobody took.</para>
/// </summary>
public sealed class SegmentationLoader : IDisposable
{
    readonly ISegmentationDataset dataset;
    readonly LoaderOptions options;
    readonly Device device;
    readonly BatchBuilder builder;
    readonly CancellationTokenSource disposed = new();
    readonly object statsGate = new();
    long batches, samples, waitTicks, elapsedTicks, activeSince;
    int activeEnumerations;

    /// <summary>A loader over <paramref name="dataset"/> that applies <paramref name="transforms"/> and puts
    /// batches on <paramref name="device"/>.</summary>
    public SegmentationLoader(ISegmentationDataset dataset, TransformPipeline transforms, LoaderOptions options, Device device)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        ArgumentNullException.ThrowIfNull(transforms);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(device);
        if (options.BatchSize <= 0) throw new ArgumentException($"loader.batch_size must be positive, got {options.BatchSize}", nameof(options));
        if (options.Workers < 0) throw new ArgumentException($"loader.workers must be 0 or more, got {options.Workers}", nameof(options));
        if (options.Prefetch is <= 0) throw new ArgumentException($"loader.prefetch must be positive, got {options.Prefetch}", nameof(options));
        if (dataset.Count == 0) throw new ArgumentException("the dataset is empty", nameof(dataset));
        if (options.WorldSize < 1 || options.Rank < 0 || options.Rank >= options.WorldSize)
            throw new ArgumentException($"loader rank {options.Rank} of world size {options.WorldSize}: need 0 <= rank < world size", nameof(options));
        if (options.Accumulate < 1) throw new ArgumentException($"train.accumulate must be 1 or more, got {options.Accumulate}", nameof(options));
        (this.dataset, this.options, this.device) = (dataset, options, device);
        builder = new BatchBuilder(dataset, transforms, options.Seed);
        int step = StepSamples;
        StepsPerEpoch = options.DropLast ? dataset.Count / step : (dataset.Count + step - 1) / step;
    }

    // Samples of one optimizer step over all processes and micro-batches: B·W·k.
    int StepSamples => options.BatchSize * options.WorldSize * options.Accumulate;

    /// <summary>Optimizer steps per epoch: floor(N / (B·W·k)) with drop-last, else ceil(N / (B·W·k)).</summary>
    public int StepsPerEpoch { get; }

    /// <summary>This rank's training batches per epoch, <see cref="StepsPerEpoch"/> × k (one process without
    /// accumulation: floor(N / B) with drop-last, else ceil(N / B)); 0 when drop-last leaves none, and then only
    /// <see cref="Epoch"/> can be used.</summary>
    public int BatchesPerEpoch => StepsPerEpoch * options.Accumulate;

    /// <summary>Batches of one whole evaluation pass over all ranks: ceil(N / B).</summary>
    public int EvalBatches => (dataset.Count + options.BatchSize - 1) / options.BatchSize;

    /// <summary>This rank's share of <see cref="EvalBatches"/> (batches b with b mod W = r).</summary>
    public int RankEvalBatches => (EvalBatches - options.Rank + options.WorldSize - 1) / options.WorldSize;

    /// <summary>The dataset being loaded.</summary>
    public ISegmentationDataset Dataset => dataset;

    /// <summary>Counters so far (batches, samples, time waited for data, skipped bad samples).</summary>
    public LoaderStats Stats
    {
        get
        {
            lock (statsGate)
            {
                long elapsed = elapsedTicks + (activeEnumerations > 0 ? Stopwatch.GetTimestamp() - activeSince : 0);
                int skipped = (dataset as SegmentationDatasetBase)?.BadSamples.Count ?? 0;
                return new LoaderStats(batches, samples, Stopwatch.GetElapsedTime(0, waitTicks), Stopwatch.GetElapsedTime(0, elapsed), skipped);
            }
        }
    }

    /// <summary>The dataset indices of training iteration <paramref name="iteration"/>.</summary>
    public int[] IndicesOf(long iteration)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(iteration);
        ThrowIfNoTrainingBatch();
        var (epoch, start) = Locate(iteration);
        var order = Order(epoch);
        return order.AsSpan(start, Math.Min(options.BatchSize, order.Length - start)).ToArray();
    }

    // Training iteration j of this rank: micro-batch m = j mod k of step t = j div k; the step's global batch starts
    // at (t mod steps per epoch)·B·W·k in the order of epoch t div steps per epoch.
    (long Epoch, int Start) Locate(long iteration)
    {
        long step = iteration / options.Accumulate;
        int micro = (int)(iteration % options.Accumulate);
        int start = (int)(step % StepsPerEpoch) * StepSamples + (micro * options.WorldSize + options.Rank) * options.BatchSize;
        return (step / StepsPerEpoch, start);
    }

    void ThrowIfNoTrainingBatch()
    {
        if (!options.DropLast && StepSamples != options.BatchSize)
            throw new InvalidOperationException("training with drop_last off cannot split a step's batch over processes or micro-batches (the last, short one would not divide); keep drop_last on");
        if (BatchesPerEpoch == 0)
            throw new InvalidOperationException(StepSamples == options.BatchSize
                ? $"loader.drop_last with batch size {options.BatchSize} leaves no training batch from a dataset of {dataset.Count} samples; lower the batch size or set drop_last: false"
                : $"a step takes {StepSamples} samples (batch {options.BatchSize} x {options.WorldSize} processes x {options.Accumulate} micro-batches) but the dataset has only {dataset.Count}; lower the batch size, the process count or train.accumulate");
    }

    /// <summary>The visiting order of training epoch <paramref name="epoch"/> (a permutation when shuffling).</summary>
    public int[] Order(long epoch)
    {
        var order = Enumerable.Range(0, dataset.Count).ToArray();
        if (options.Shuffle) new Random(SeedMix.Combine(options.Seed, epoch, 0x5348554646)).Shuffle(order);
        return order;
    }

    /// <summary>
    /// Endless training batches from global iteration <paramref name="fromIteration"/> on, epoch after epoch,
    /// shuffled and with drop-last as configured. Resuming at t gives exactly the batches a run from 0 gives at t.
    /// </summary>
    public IEnumerable<SegmentationBatch> Iterate(long fromIteration = 0, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(fromIteration);
        ThrowIfNoTrainingBatch();
        return Run(Jobs(), ct);

        IEnumerable<BatchJob> Jobs()
        {
            long epoch = -1;
            int[] order = [];
            for (long t = fromIteration; ; t++)
            {
                var (e, start) = Locate(t);
                if (e != epoch) (epoch, order) = (e, Order(e));
                yield return new BatchJob(order.AsSpan(start, Math.Min(options.BatchSize, order.Length - start)).ToArray(), t, e);
            }
        }
    }

    /// <summary>One pass over the dataset in index order, the last batch possibly smaller (evaluation); in a
    /// data-parallel job this rank's batches only (b mod W = r). Augmentation streams use (seed,
    /// <paramref name="epoch"/>, index).</summary>
    public IEnumerable<SegmentationBatch> Epoch(int epoch = 0, CancellationToken ct = default)
    {
        return Run(Jobs(), ct);

        IEnumerable<BatchJob> Jobs()
        {
            for (int b = options.Rank; b < EvalBatches; b += options.WorldSize)
            {
                int start = b * options.BatchSize, n = Math.Min(options.BatchSize, dataset.Count - start);
                yield return new BatchJob(Enumerable.Range(start, n).ToArray(), b, epoch);
            }
        }
    }

    IEnumerable<SegmentationBatch> Run(IEnumerable<BatchJob> jobs, CancellationToken ct)
    {
        ObjectDisposedException.ThrowIf(disposed.IsCancellationRequested, this);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct, disposed.Token);
        using var source = jobs.GetEnumerator();
        BeginEnumeration();
        WorkerPool? pool = options.Workers > 0 ? new WorkerPool(options.Workers, builder, stop.Token) : null;
        var pending = new Queue<BatchJob>();
        try
        {
            while (true)
            {
                stop.Token.ThrowIfCancellationRequested();
                // Keep the prefetch window full: jobs run in FIFO order on the workers.
                while (pool is not null && pending.Count < options.EffectivePrefetch && source.MoveNext())
                {
                    pending.Enqueue(source.Current);
                    pool.Post(source.Current);
                }
                SegmentationBatch cpu;
                long waitStart = Stopwatch.GetTimestamp();
                if (pool is null)
                {
                    if (!source.MoveNext()) yield break;
                    cpu = builder.Build(source.Current);
                }
                else
                {
                    if (pending.Count == 0) yield break;
                    var task = pending.Peek().Done.Task;
                    try { task.Wait(stop.Token); }
                    catch (AggregateException e) when (e.InnerExceptions.Count == 1) { ExceptionDispatchInfo.Throw(e.InnerException!); }
                    pending.Dequeue();
                    cpu = task.Result;
                }
                var batch = ToDevice(cpu);
                lock (statsGate)
                {
                    waitTicks += Stopwatch.GetTimestamp() - waitStart;
                    batches++;
                    samples += batch.Count;
                }
                yield return batch;
            }
        }
        finally
        {
            pool?.Dispose();
            // Batches built but never taken: free their tensors now rather than at finalisation.
            foreach (var job in pending)
                if (job.Done.Task.IsCompletedSuccessfully) job.Done.Task.Result.Dispose();
            EndEnumeration();
        }
    }

    SegmentationBatch ToDevice(SegmentationBatch cpu)
    {
        if (device.type == DeviceType.CPU) return cpu;
        using (cpu)
        {
            var images = cpu.Images.to(device).DetachFromDisposeScope();
            var labels = cpu.Labels.to(device).DetachFromDisposeScope();
            return new SegmentationBatch(images, labels, cpu.Ids, cpu.Indices, cpu.Iteration, cpu.Epoch);
        }
    }

    void BeginEnumeration()
    {
        lock (statsGate) { if (activeEnumerations++ == 0) activeSince = Stopwatch.GetTimestamp(); }
    }

    void EndEnumeration()
    {
        lock (statsGate) { if (--activeEnumerations == 0) elapsedTicks += Stopwatch.GetTimestamp() - activeSince; }
    }

    /// <summary>Stops every running enumeration's workers (their <c>foreach</c> ends with
    /// <see cref="OperationCanceledException"/>).</summary>
    public void Dispose()
    {
        if (disposed.IsCancellationRequested) return;
        disposed.Cancel();
    }
}
