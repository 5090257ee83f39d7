namespace Seg.Data;

/// <summary>
/// One augmentation or preprocessing step on an (image, mask) pair. Geometric steps move image and mask together
/// (masks only ever with nearest-neighbour); photometric steps touch the image only.
/// <para>Ownership: <see cref="Apply"/> never disposes its input; it returns either the input sample itself
/// (nothing done) or a new sample whose Mats it made, possibly sharing the untouched Mat of the input
/// (e.g. a colour step returns the input's mask). <see cref="TransformPipeline"/> handles the bookkeeping.</para>
/// </summary>
public interface ISegmentationTransform
{
    /// <summary>The config name of the step (e.g. <c>random_crop</c>).</summary>
    string Name { get; }

    /// <summary>Transforms <paramref name="sample"/>, drawing its random choices from <paramref name="context"/>.</summary>
    SegmentationSample Apply(SegmentationSample sample, TransformContext context);
}

/// <summary>
/// What a transform needs besides the sample: the random stream of this sample (seeded from
/// (seed, epoch, index) by the loader) and the label that padding in the mask gets.
/// </summary>
public sealed record TransformContext(Random Random, long IgnoreIndex = 255)
{
    /// <summary>A context whose stream is a function of (seed, epoch, index) only.</summary>
    public static TransformContext For(int seed, long epoch, long index, long ignoreIndex = 255) =>
        new(new Random(SeedMix.Combine(seed, epoch, index)), ignoreIndex);
}
