using Seg.Data.Transforms;

namespace Seg.Data;

/// <summary>
/// An ordered list of transforms applied to one sample with one random stream. Built in C# from transform
/// objects or from the config's list of (type, args) through <see cref="TransformFactory"/>.
/// </summary>
public sealed class TransformPipeline
{
    /// <summary>A pipeline over <paramref name="transforms"/>, in order.</summary>
    public TransformPipeline(IEnumerable<ISegmentationTransform> transforms)
    {
        Transforms = transforms.ToArray();
        Normalization = Transforms.OfType<Normalize>().LastOrDefault();
    }

    /// <summary>A pipeline that changes nothing (the loader then scales 8-bit images to [0, 1]).</summary>
    public static TransformPipeline Empty { get; } = new([]);

    /// <summary>Builds each (type, args) entry with <see cref="TransformFactory.Create"/>; errors name the entry's position.</summary>
    public static TransformPipeline FromConfig(IEnumerable<(string Type, IReadOnlyDictionary<string, object?> Args)> entries)
    {
        var list = new List<ISegmentationTransform>();
        int i = 0;
        foreach (var (type, args) in entries)
        {
            try { list.Add(TransformFactory.Create(type, args)); }
            catch (ArgumentException e) { throw new ArgumentException($"transforms[{i}]: {e.Message}", e); }
            i++;
        }
        return new TransformPipeline(list);
    }

    /// <summary>The steps, in order.</summary>
    public IReadOnlyList<ISegmentationTransform> Transforms { get; }

    /// <summary>The last <c>normalize</c> step, if any (to undo it for reports).</summary>
    public Normalize? Normalization { get; }

    /// <summary>
    /// Applies every step. Does not dispose <paramref name="sample"/>; disposes the intermediate Mats it made.
    /// The result may share Mats with the input (when a step left one untouched).
    /// </summary>
    public SegmentationSample Apply(SegmentationSample sample, TransformContext context)
    {
        var current = sample;
        foreach (var t in Transforms)
        {
            SegmentationSample next;
            try { next = t.Apply(current, context); }
            catch when (!ReferenceEquals(current, sample)) { DisposeMade(current, sample, null); throw; }
            if (!ReferenceEquals(current, sample) && !ReferenceEquals(next, current)) DisposeMade(current, sample, next);
            current = next;
        }
        return current;
    }

    // Disposes the Mats of an intermediate sample that neither the caller's input nor the next sample holds.
    static void DisposeMade(SegmentationSample made, SegmentationSample input, SegmentationSample? next)
    {
        if (!ReferenceEquals(made.Image, input.Image) && !ReferenceEquals(made.Image, next?.Image)) made.Image.Dispose();
        if (!ReferenceEquals(made.Mask, input.Mask) && !ReferenceEquals(made.Mask, next?.Mask)) made.Mask.Dispose();
    }

    /// <summary>Applies the pipeline with the stream of (seed, epoch, index) — what the loader does.</summary>
    public SegmentationSample Apply(SegmentationSample sample, int seed, long epoch, long index, long ignoreIndex = 255) =>
        Apply(sample, TransformContext.For(seed, epoch, index, ignoreIndex));
}
