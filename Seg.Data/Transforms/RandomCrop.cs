using OpenCvSharp;

namespace Seg.Data.Transforms;

/// <summary>
/// <c>random_crop</c>: pads the bottom and right edges up to the crop size (image with <see cref="FillRgb"/>,
/// mask with the ignore index, so padding never counts as a class), then cuts a crop at a uniform random offset.
/// Config: <c>size: 321</c> or <c>[height, width]</c>, optional <c>fill: [R, G, B]</c> (default ImageNet's mean).
/// </summary>
public sealed class RandomCrop(int height, int width, double[]? fillRgb = null) : ISegmentationTransform
{
    /// <summary>Crop height.</summary>
    public int Height { get; } = height > 0 ? height : throw new ArgumentOutOfRangeException(nameof(height));

    /// <summary>Crop width.</summary>
    public int Width { get; } = width > 0 ? width : throw new ArgumentOutOfRangeException(nameof(width));

    /// <summary>Image padding colour, RGB 0–255.</summary>
    public double[] FillRgb { get; } = fillRgb ?? Fill.ImageNetMeanRgb;

    /// <inheritdoc/>
    public string Name => "random_crop";

    internal static RandomCrop FromArgs(TransformArgs a)
    {
        var (h, w) = a.Size("size");
        return new RandomCrop(h, w, Fill.Check(a, "fill", a.Triple("fill", Fill.ImageNetMeanRgb)));
    }

    /// <inheritdoc/>
    public SegmentationSample Apply(SegmentationSample sample, TransformContext context)
    {
        int h = sample.Image.Rows, w = sample.Image.Cols;
        int padBottom = Math.Max(0, Height - h), padRight = Math.Max(0, Width - w);
        // Draw the offset before any allocation so that the stream does not depend on the padding.
        int y0 = context.Random.Next(Math.Max(h, Height) - Height + 1);
        int x0 = context.Random.Next(Math.Max(w, Width) - Width + 1);
        var rect = new Rect(x0, y0, Width, Height);
        if (padBottom == 0 && padRight == 0)
            return sample with { Image = sample.Image[rect].Clone(), Mask = sample.Mask[rect].Clone() };
        using var paddedImage = new Mat();
        using var paddedMask = new Mat();
        Cv2.CopyMakeBorder(sample.Image, paddedImage, 0, padBottom, 0, padRight, BorderTypes.Constant, Fill.Bgr(FillRgb));
        Cv2.CopyMakeBorder(sample.Mask, paddedMask, 0, padBottom, 0, padRight, BorderTypes.Constant, new Scalar(context.IgnoreIndex));
        return sample with { Image = paddedImage[rect].Clone(), Mask = paddedMask[rect].Clone() };
    }
}
