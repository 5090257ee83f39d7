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

    /// <summary>This process's rank in a data-parallel job (0 alone). Training: rank r takes samples
    /// [r·B, (r+1)·B) of each global batch; evaluation: batches b with b mod <see cref="WorldSize"/> = r.</summary>
    public int Rank { get; init; }

    /// <summary>Processes in the job (1 alone). The global batch of a training step holds
    /// <see cref="BatchSize"/> × <see cref="WorldSize"/> × <see cref="Accumulate"/> samples.</summary>
    public int WorldSize { get; init; } = 1;

    /// <summary>Micro-batches per optimizer step (gradient accumulation); training iteration j of this loader is
    /// micro-batch j mod k of step j div k.</summary>
    public int Accumulate { get; init; } = 1;

    internal int EffectivePrefetch => Prefetch ?? Math.Max(2, 2 * Workers);
}
