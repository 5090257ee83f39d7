using OpenCvSharp;

namespace Seg.Data.Transforms;

/// <summary>
/// <c>random_rotate</c>: with probability <c>p</c> rotates about the centre by an angle drawn uniformly from
/// <c>degrees</c> (image bilinear, mask nearest; corners filled with <c>fill</c> and the ignore index).
/// Config: <c>degrees: 10</c> (= [-10, 10]) or <c>[low, high]</c>, <c>p: 1.0</c>, <c>fill: [R, G, B]</c>.
/// </summary>
public sealed class RandomRotate(double lowDegrees = -10, double highDegrees = 10, double p = 1.0, double[]? fillRgb = null) : ISegmentationTransform
{
    /// <summary>Smallest angle, degrees (counter-clockwise positive).</summary>
    public double LowDegrees { get; } = lowDegrees <= highDegrees ? lowDegrees : throw new ArgumentOutOfRangeException(nameof(lowDegrees));

    /// <summary>Largest angle, degrees.</summary>
    public double HighDegrees { get; } = highDegrees;

    /// <summary>Probability of rotating.</summary>
    public double P { get; } = p is >= 0 and <= 1 ? p : throw new ArgumentOutOfRangeException(nameof(p));

    /// <summary>Image fill colour, RGB 0–255.</summary>
    public double[] FillRgb { get; } = fillRgb ?? Fill.ImageNetMeanRgb;

    /// <inheritdoc/>
    public string Name => "random_rotate";

    internal static RandomRotate FromArgs(TransformArgs a)
    {
        var (lo, hi) = a.Range("degrees", (-10, 10), symmetric: true);
        return new RandomRotate(lo, hi, a.Probability("p", 1.0), Fill.Check(a, "fill", a.Triple("fill", Fill.ImageNetMeanRgb)));
    }

    /// <inheritdoc/>
    public SegmentationSample Apply(SegmentationSample sample, TransformContext context)
    {
        if (context.Random.NextDouble() >= P) return sample;
        double angle = LowDegrees + (HighDegrees - LowDegrees) * context.Random.NextDouble();
        int w = sample.Image.Cols, h = sample.Image.Rows;
        using var m = Cv2.GetRotationMatrix2D(new Point2f((w - 1) / 2f, (h - 1) / 2f), angle, 1.0);
        var image = new Mat();
        var mask = new Mat();
        Cv2.WarpAffine(sample.Image, image, m, new Size(w, h), InterpolationFlags.Linear, BorderTypes.Constant, Fill.Bgr(FillRgb));
        Cv2.WarpAffine(sample.Mask, mask, m, new Size(w, h), InterpolationFlags.Nearest, BorderTypes.Constant, new Scalar(context.IgnoreIndex));
        return sample with { Image = image, Mask = mask };
    }
}
