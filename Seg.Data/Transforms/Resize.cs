using OpenCvSharp;

namespace Seg.Data.Transforms;

/// <summary>
/// <c>resize</c>: to a fixed size (image bilinear, or area-averaged when shrinking; mask nearest).
/// Config: <c>size: 256</c> or <c>size: [height, width]</c>.
/// </summary>
public sealed class Resize(int height, int width) : ISegmentationTransform
{
    /// <summary>Output height.</summary>
    public int Height { get; } = height > 0 ? height : throw new ArgumentOutOfRangeException(nameof(height));

    /// <summary>Output width.</summary>
    public int Width { get; } = width > 0 ? width : throw new ArgumentOutOfRangeException(nameof(width));

    /// <inheritdoc/>
    public string Name => "resize";

    internal static Resize FromArgs(TransformArgs a)
    {
        var (h, w) = a.Size("size");
        return new Resize(h, w);
    }

    /// <inheritdoc/>
    public SegmentationSample Apply(SegmentationSample sample, TransformContext context) => To(sample, new Size(Width, Height));

    /// <summary>Resizes image and mask to <paramref name="size"/> (width, height).</summary>
    internal static SegmentationSample To(SegmentationSample sample, Size size)
    {
        if (size.Width == sample.Image.Cols && size.Height == sample.Image.Rows) return sample;
        bool shrinking = size.Width < sample.Image.Cols && size.Height < sample.Image.Rows;
        var image = new Mat();
        var mask = new Mat();
        Cv2.Resize(sample.Image, image, size, 0, 0, shrinking ? InterpolationFlags.Area : InterpolationFlags.Linear);
        Cv2.Resize(sample.Mask, mask, size, 0, 0, InterpolationFlags.Nearest);
        return sample with { Image = image, Mask = mask };
    }
}
