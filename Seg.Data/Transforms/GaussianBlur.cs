using OpenCvSharp;

namespace Seg.Data.Transforms;

/// <summary>
/// <c>gaussian_blur</c>: with probability <c>p</c> (default 0.5) blurs the image (not the mask) with an odd
/// <c>kernel</c> (default 5) and a sigma drawn from <c>sigma</c> (default [0.1, 2.0]).
/// </summary>
public sealed class GaussianBlur(int kernel = 5, double sigmaLow = 0.1, double sigmaHigh = 2.0, double p = 0.5) : ISegmentationTransform
{
    /// <summary>Odd kernel side.</summary>
    public int Kernel { get; } = kernel > 0 && kernel % 2 == 1 ? kernel : throw new ArgumentOutOfRangeException(nameof(kernel), kernel, "gaussian_blur kernel must be a positive odd integer");

    /// <summary>Smallest sigma, pixels.</summary>
    public double SigmaLow { get; } = sigmaLow > 0 && sigmaLow <= sigmaHigh ? sigmaLow : throw new ArgumentOutOfRangeException(nameof(sigmaLow));

    /// <summary>Largest sigma, pixels.</summary>
    public double SigmaHigh { get; } = sigmaHigh;

    /// <summary>Probability of blurring.</summary>
    public double P { get; } = p is >= 0 and <= 1 ? p : throw new ArgumentOutOfRangeException(nameof(p));

    /// <inheritdoc/>
    public string Name => "gaussian_blur";

    internal static GaussianBlur FromArgs(TransformArgs a)
    {
        double k = a.Number("kernel", 5);
        if (k < 1 || k != Math.Floor(k) || k % 2 != 1) throw a.Bad("kernel", k, "a positive odd integer");
        var (lo, hi) = a.Range("sigma", (0.1, 2.0));
        if (lo <= 0) throw a.Bad("sigma", new[] { lo, hi }, "a [low, high] list of positive numbers");
        return new GaussianBlur((int)k, lo, hi, a.Probability("p", 0.5));
    }

    /// <inheritdoc/>
    public SegmentationSample Apply(SegmentationSample sample, TransformContext context)
    {
        if (context.Random.NextDouble() >= P) return sample;
        double sigma = SigmaLow + (SigmaHigh - SigmaLow) * context.Random.NextDouble();
        var image = new Mat();
        Cv2.GaussianBlur(sample.Image, image, new Size(Kernel, Kernel), sigma, sigma, BorderTypes.Reflect101);
        return sample with { Image = image };
    }
}
