namespace Seg.Data;

/// <summary>How <see cref="SegmentationLoader"/> batches, shuffles and prefetches (config <c>loader</c> keys).</summary>
public sealed record LoaderOptions
{
    /// <summary>Samples per batch.</summary>
    public int BatchSize { get; init; } = 8;

    /// <summary>Worker threads that read, augment and batch samples; 0 builds batches on the consumer's thread.</summary>
    public int Workers { get; init; } = Environment.ProcessorCount;

    /// <summary>Batches prepared ahead of the consumer (bounds memory: at most this many batches exist unconsumed).
    /// Null: twice the worker count, at least 2.</summary>
    public int? Prefetch { get; init; }

    /// <summary>Shuffle the training order each epoch, seeded by (seed, epoch).</summary>
    public bool Shuffle { get; init; } = true;

    /// <summary>Drop the last, incomplete batch of each training epoch.</summary>
    public bool DropLast { get; init; } = true;

    /// <summary>Seed of shuffling and augmentation (sample streams are seeded by (seed, epoch, index)).</summary>
    public int Seed { get; init; }

    internal int EffectivePrefetch => Prefetch ?? Math.Max(2, 2 * Workers);
}
