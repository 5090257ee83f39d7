using OpenCvSharp;

namespace Seg.Data.Transforms;

/// <summary>
/// <c>color_jitter</c>: with probability <c>p</c> (default 1) changes brightness, contrast, saturation and hue of
/// the image (not the mask), in that order, with torchvision's meaning of the amounts: a factor drawn from
/// [1-x, 1+x] for the first three (brightness scales, contrast blends with the mean grey, saturation blends with
/// the grey image) and a hue shift drawn from [-hue, hue] turns of the colour circle (hue ≤ 0.5).
/// Needs an 8-bit image (place it before <c>normalize</c>).
/// </summary>
public sealed class ColorJitter(double brightness = 0.2, double contrast = 0.2, double saturation = 0.2, double hue = 0.05, double p = 1.0) : ISegmentationTransform
{
    /// <summary>Brightness amount (factor in [1-x, 1+x]).</summary>
    public double Brightness { get; } = brightness is >= 0 and <= 1 ? brightness : throw new ArgumentOutOfRangeException(nameof(brightness));

    /// <summary>Contrast amount.</summary>
    public double Contrast { get; } = contrast is >= 0 and <= 1 ? contrast : throw new ArgumentOutOfRangeException(nameof(contrast));

    /// <summary>Saturation amount.</summary>
    public double Saturation { get; } = saturation is >= 0 and <= 1 ? saturation : throw new ArgumentOutOfRangeException(nameof(saturation));

    /// <summary>Hue amount, in turns (≤ 0.5).</summary>
    public double Hue { get; } = hue is >= 0 and <= 0.5 ? hue : throw new ArgumentOutOfRangeException(nameof(hue));

    /// <summary>Probability of jittering.</summary>
    public double P { get; } = p is >= 0 and <= 1 ? p : throw new ArgumentOutOfRangeException(nameof(p));

    /// <inheritdoc/>
    public string Name => "color_jitter";

    internal static ColorJitter FromArgs(TransformArgs a)
    {
        double Amount(string key, double fallback, double max)
        {
            double v = a.Number(key, fallback);
            return v >= 0 && v <= max ? v : throw a.Bad(key, v, $"a number in [0, {max}]");
        }
        return new ColorJitter(Amount("brightness", 0.2, 1), Amount("contrast", 0.2, 1), Amount("saturation", 0.2, 1),
            Amount("hue", 0.05, 0.5), a.Probability("p", 1.0));
    }

    /// <inheritdoc/>
    public SegmentationSample Apply(SegmentationSample sample, TransformContext context)
    {
        if (sample.Image.Type() != MatType.CV_8UC3)
            throw new InvalidOperationException($"color_jitter needs an 8-bit BGR image, got {sample.Image.Type()} for sample '{sample.Id}'; put it before 'normalize'");
        var rng = context.Random;
        if (rng.NextDouble() >= P) return sample;
        double b = Factor(rng, Brightness), c = Factor(rng, Contrast), s = Factor(rng, Saturation);
        double h = (2 * rng.NextDouble() - 1) * Hue;

        var image = new Mat();
        sample.Image.ConvertTo(image, MatType.CV_8UC3, b, 0);
        using (var grey = new Mat())
        {
            Cv2.CvtColor(image, grey, ColorConversionCodes.BGR2GRAY);
            double mean = Cv2.Mean(grey).Val0;
            image.ConvertTo(image, MatType.CV_8UC3, c, (1 - c) * mean);
            Cv2.CvtColor(image, grey, ColorConversionCodes.BGR2GRAY);
            using var grey3 = new Mat();
            Cv2.CvtColor(grey, grey3, ColorConversionCodes.GRAY2BGR);
            Cv2.AddWeighted(image, s, grey3, 1 - s, 0, image);
        }
        int shift = (int)Math.Round(h * 256);
        if (shift != 0)
        {
            // Full-range HSV keeps hue in 0..255, so that a byte's wrap-around is the turn of the colour circle.
            using var hsv = new Mat();
            Cv2.CvtColor(image, hsv, ColorConversionCodes.BGR2HSV_FULL);
            var table = new byte[256 * 3];
            for (int v = 0; v < 256; v++)
            {
                table[3 * v] = (byte)((v + shift) & 0xFF);
                table[3 * v + 1] = (byte)v;
                table[3 * v + 2] = (byte)v;
            }
            using var lut = Mat.FromPixelData(1, 256, MatType.CV_8UC3, table);
            Cv2.LUT(hsv, lut, hsv);
            Cv2.CvtColor(hsv, image, ColorConversionCodes.HSV2BGR_FULL);
        }
        return sample with { Image = image };
    }

    static double Factor(Random rng, double amount) => 1 + (2 * rng.NextDouble() - 1) * amount;
}
