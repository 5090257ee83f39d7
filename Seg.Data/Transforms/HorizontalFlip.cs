using OpenCvSharp;

namespace Seg.Data.Transforms;

/// <summary><c>horizontal_flip</c>: mirrors image and mask left–right with probability <c>p</c> (default 0.5).</summary>
public sealed class HorizontalFlip(double p = 0.5) : ISegmentationTransform
{
    /// <summary>Probability of flipping.</summary>
    public double P { get; } = p is >= 0 and <= 1 ? p : throw new ArgumentOutOfRangeException(nameof(p));

    /// <inheritdoc/>
    public string Name => "horizontal_flip";

    internal static HorizontalFlip FromArgs(TransformArgs a) => new(a.Probability("p", 0.5));

    /// <inheritdoc/>
    public SegmentationSample Apply(SegmentationSample sample, TransformContext context)
    {
        if (context.Random.NextDouble() >= P) return sample;
        var image = new Mat();
        var mask = new Mat();
        Cv2.Flip(sample.Image, image, FlipMode.Y);
        Cv2.Flip(sample.Mask, mask, FlipMode.Y);
        return sample with { Image = image, Mask = mask };
    }
}
