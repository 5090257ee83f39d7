using OpenCvSharp;

namespace Seg.Data.Datasets;

/// <summary>
/// Base of the generated datasets (shapes, fmnist_scenes): a split of <see cref="Count"/> square samples whose
/// sample i depends only on (seed, split, i, size), so any worker can make any sample in any order.
/// </summary>
public abstract class ProceduralDatasetBase : SegmentationDatasetBase
{
    readonly string type;
    readonly int count, seed;
    readonly long splitHash;

    /// <summary>Side of every sample, in pixels.</summary>
    protected int Size { get; }

    /// <summary>The split's name (part of each sample's seed and id).</summary>
    protected string Split { get; }

    /// <summary>Checks <paramref name="count"/> and <paramref name="size"/> (at least <paramref name="minSize"/>), naming the dataset <paramref name="type"/>.</summary>
    protected ProceduralDatasetBase(string type, IReadOnlyList<string> classNames, IReadOnlyList<(byte R, byte G, byte B)> palette,
                                    int count, int size, int minSize, int seed, string split, long ignoreIndex)
        : base(classNames, palette, ignoreIndex, BadSampleMode.Error)
    {
        if (count <= 0) throw new ArgumentOutOfRangeException(nameof(count), count, $"{type}: count must be positive");
        if (size < minSize) throw new ArgumentOutOfRangeException(nameof(size), size, $"{type}: size must be at least {minSize} pixels");
        (this.type, this.count, this.seed, Size, Split) = (type, count, seed, size, split);
        splitHash = SeedMix.Hash(split);
    }

    /// <inheritdoc/>
    public override int Count => count;

    /// <inheritdoc/>
    protected override string Describe() => $"{type}/{Split}";

    /// <summary>Sample <paramref name="index"/>'s random stream, a BGR image to paint and an all-background mask.</summary>
    protected (Random Rng, Mat Image, Mat Mask) NewCanvas(int index) =>
        (new Random(SeedMix.Combine(seed, splitHash, index, Size)),
         new Mat(Size, Size, MatType.CV_8UC3),
         new Mat(Size, Size, MatType.CV_8UC1, Scalar.All(0)));
}
