using OpenCvSharp;

namespace Seg.Data.Transforms;

/// <summary>Padding colour of geometric transforms: given in RGB 0–255, applied to BGR Mats.</summary>
public static class Fill
{
    /// <summary>ImageNet's mean colour in RGB 0–255: padding that normalises to about zero.</summary>
    public static readonly double[] ImageNetMeanRgb = [123.675, 116.28, 103.53];

    /// <summary>The BGR <see cref="Scalar"/> of an RGB triple.</summary>
    public static Scalar Bgr(double[] rgb) => new(rgb[2], rgb[1], rgb[0]);

    /// <summary>Checks the triple is in 0–255.</summary>
    public static double[] Check(TransformArgs args, string key, double[] rgb) =>
        rgb.All(v => v is >= 0 and <= 255) ? rgb : throw args.Bad(key, rgb, "3 numbers in 0..255 (R, G, B)");
}
