using OpenCvSharp;

namespace Seg.Data.Transforms;

/// <summary>
/// <c>normalize</c>: 8-bit BGR image → float32 BGR with (value/255 − mean)/std per channel; mean and std are
/// given in RGB order and 0–1 units (default ImageNet's: mean [0.485, 0.456, 0.406], std [0.229, 0.224, 0.225]).
/// The loader turns the result into an RGB tensor; <see cref="Visualization"/> inverts it for reports.
/// </summary>
public sealed class Normalize(double[]? meanRgb = null, double[]? stdRgb = null) : ISegmentationTransform
{
    /// <summary>ImageNet's channel means, RGB, 0–1.</summary>
    public static readonly double[] ImageNetMean = [0.485, 0.456, 0.406];

    /// <summary>ImageNet's channel standard deviations, RGB, 0–1.</summary>
    public static readonly double[] ImageNetStd = [0.229, 0.224, 0.225];

    /// <summary>Channel means, RGB, 0–1.</summary>
    public double[] MeanRgb { get; } = meanRgb is null ? ImageNetMean : meanRgb.Length == 3 ? meanRgb : throw new ArgumentException("normalize: mean needs 3 values (R, G, B)", nameof(meanRgb));

    /// <summary>Channel standard deviations, RGB, 0–1.</summary>
    public double[] StdRgb { get; } = stdRgb is null ? ImageNetStd : stdRgb.Length == 3 && stdRgb.All(s => s > 0) ? stdRgb : throw new ArgumentException("normalize: std needs 3 positive values (R, G, B)", nameof(stdRgb));

    /// <inheritdoc/>
    public string Name => "normalize";

    internal static Normalize FromArgs(TransformArgs a)
    {
        var std = a.Triple("std", ImageNetStd);
        if (std.Any(s => s <= 0)) throw a.Bad("std", std, "3 positive numbers (R, G, B)");
        return new Normalize(a.Triple("mean", ImageNetMean), std);
    }

    /// <inheritdoc/>
    public unsafe SegmentationSample Apply(SegmentationSample sample, TransformContext context)
    {
        if (sample.Image.Type() != MatType.CV_8UC3)
            throw new InvalidOperationException($"normalize needs an 8-bit BGR image, got {sample.Image.Type()} for sample '{sample.Id}' (is 'normalize' listed twice?)");
        // One 256-entry table per BGR channel: a single pass with no per-pixel division.
        var table = new float[3 * 256];
        for (int c = 0; c < 3; c++)
            for (int v = 0; v < 256; v++)
                table[c * 256 + v] = (float)((v / 255.0 - MeanRgb[2 - c]) / StdRgb[2 - c]);
        int rows = sample.Image.Rows, cols = sample.Image.Cols;
        var image = new Mat(rows, cols, MatType.CV_32FC3);
        fixed (float* t = table)
            for (int y = 0; y < rows; y++)
            {
                byte* src = (byte*)sample.Image.Ptr(y);
                float* dst = (float*)image.Ptr(y);
                for (int x = 0; x < 3 * cols; x += 3)
                {
                    dst[x] = t[src[x]];
                    dst[x + 1] = t[256 + src[x + 1]];
                    dst[x + 2] = t[512 + src[x + 2]];
                }
            }
        return sample with { Image = image };
    }

    /// <summary>The inverse for one RGB channel value: normalised → 0–255.</summary>
    public double Denormalize(int rgbChannel, double value) => (value * StdRgb[rgbChannel] + MeanRgb[rgbChannel]) * 255.0;
}
