using OpenCvSharp;

namespace Seg.Data.Transforms;

/// <summary>
/// <c>random_scale</c>: resizes by a factor drawn uniformly from [Low, High] (image bilinear, mask nearest).
/// Config: <c>range: [0.5, 2.0]</c>.
/// </summary>
public sealed class RandomScale(double low = 0.5, double high = 2.0) : ISegmentationTransform
{
    /// <summary>Smallest factor.</summary>
    public double Low { get; } = low > 0 && low <= high ? low : throw new ArgumentOutOfRangeException(nameof(low), $"random_scale needs 0 < low <= high, got [{low}, {high}]");

    /// <summary>Largest factor.</summary>
    public double High { get; } = high;

    /// <inheritdoc/>
    public string Name => "random_scale";

    internal static RandomScale FromArgs(TransformArgs a)
    {
        var (lo, hi) = a.Range("range", (0.5, 2.0));
        if (lo <= 0) throw a.Bad("range", new[] { lo, hi }, "a [low, high] list of positive numbers");
        return new RandomScale(lo, hi);
    }

    /// <inheritdoc/>
    public SegmentationSample Apply(SegmentationSample sample, TransformContext context)
    {
        double s = Low + (High - Low) * context.Random.NextDouble();
        int w = sample.Image.Cols, h = sample.Image.Rows;
        var size = new Size(Math.Max(1, (int)Math.Round(w * s)), Math.Max(1, (int)Math.Round(h * s)));
        return Resize.To(sample, size);
    }
}
