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
        if (options.DropLast && dataset.Count < options.BatchSize)
            throw new ArgumentException($"loader.drop_last with batch size {options.BatchSize} leaves no batch from a dataset of {dataset.Count} samples; lower the batch size or set drop_last: false", nameof(options));
        (this.dataset, this.options, this.device) = (dataset, options, device);
        builder = new BatchBuilder(dataset, transforms, options.Seed);
        BatchesPerEpoch = options.DropLast ? dataset.Count / options.BatchSize : (dataset.Count + options.BatchSize - 1) / options.BatchSize;
    }

    /// <summary>Training batches per epoch (with drop-last: floor(N / B), else ceil(N / B)).</summary>
    public int BatchesPerEpoch { get; }

    /// <summary>Batches of one evaluation pass through <see cref="Epoch"/>: ceil(N / B).</summary>
    public int EvalBatches => (dataset.Count + options.BatchSize - 1) / options.BatchSize;

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
        long epoch = iteration / BatchesPerEpoch;
        int start = (int)(iteration % BatchesPerEpoch) * options.BatchSize;
        var order = Order(epoch);
        return order.AsSpan(start, Math.Min(options.BatchSize, order.Length - start)).ToArray();
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
        return Run(Jobs(), ct);

        IEnumerable<BatchJob> Jobs()
        {
            long epoch = -1;
            int[] order = [];
            for (long t = fromIteration; ; t++)
            {
                long e = t / BatchesPerEpoch;
                if (e != epoch) (epoch, order) = (e, Order(e));
                int start = (int)(t % BatchesPerEpoch) * options.BatchSize;
                yield return new BatchJob(order.AsSpan(start, Math.Min(options.BatchSize, order.Length - start)).ToArray(), t, e);
            }
        }
    }

    /// <summary>One pass over the dataset in index order, the last batch possibly smaller (evaluation).
    /// Augmentation streams use (seed, <paramref name="epoch"/>, index).</summary>
    public IEnumerable<SegmentationBatch> Epoch(int epoch = 0, CancellationToken ct = default)
    {
        return Run(Jobs(), ct);

        IEnumerable<BatchJob> Jobs()
        {
            for (int b = 0; b < EvalBatches; b++)
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
                    stop.Token.ThrowIfCancellationRequested();
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
