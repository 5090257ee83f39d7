using System.Collections.Concurrent;

namespace Seg.Data;

/// <summary>
/// Dedicated threads that build posted batch jobs in FIFO order (dedicated rather than thread-pool threads, so
/// that blocking decode work cannot starve the rest of the process). Disposing cancels and joins them.
/// </summary>
internal sealed class WorkerPool : IDisposable
{
    readonly BlockingCollection<BatchJob> queue = new(new ConcurrentQueue<BatchJob>());
    readonly CancellationTokenSource stop;
    readonly Thread[] threads;

    public WorkerPool(int workers, BatchBuilder builder, CancellationToken token)
    {
        stop = CancellationTokenSource.CreateLinkedTokenSource(token);
        threads = Enumerable.Range(0, workers).Select(i => new Thread(() => Work(builder))
        {
            IsBackground = true,
            Name = $"seg-loader-{i}",
        }).ToArray();
        foreach (var t in threads) t.Start();
    }

    public void Post(BatchJob job) => queue.Add(job);

    void Work(BatchBuilder builder)
    {
        try
        {
            foreach (var job in queue.GetConsumingEnumerable(stop.Token))
            {
                if (stop.IsCancellationRequested) { job.Done.TrySetCanceled(); continue; }
                try { job.Done.TrySetResult(builder.Build(job)); }
                catch (Exception e) { job.Done.TrySetException(e); }
            }
        }
        catch (OperationCanceledException) { }
    }

    public void Dispose()
    {
        stop.Cancel();
        queue.CompleteAdding();
        foreach (var t in threads) t.Join();
        // Jobs nobody started: mark them cancelled so that no one waits on them.
        while (queue.TryTake(out var job)) job.Done.TrySetCanceled();
        stop.Dispose();
        queue.Dispose();
    }
}
