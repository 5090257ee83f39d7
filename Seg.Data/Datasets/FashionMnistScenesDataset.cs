using OpenCvSharp;

namespace Seg.Data.Datasets;

/// <summary>
/// Scenes of 2–5 real Fashion-MNIST garments placed on a dark textured canvas with scale jitter and overlap.
/// Mask = garment class + 1 where the (resized) garment's intensity exceeds <see cref="Threshold"/>, 0 elsewhere;
/// later garments occlude earlier ones. 11 classes: background + Fashion-MNIST's 10. The train split draws
/// garments from Fashion-MNIST's train set, every other split from its test set; sample i depends only on
/// (seed, split, i, size).
/// </summary>
public sealed class FashionMnistScenesDataset : ProceduralDatasetBase
{
    /// <summary>Grey level above which a garment pixel is labelled (0–255).</summary>
    public const int Threshold = 40;

    /// <summary>Class names: background then Fashion-MNIST's.</summary>
    public static readonly IReadOnlyList<string> Names = FashionMnistIdx.Names.Prepend("background").ToArray();

    /// <summary>Black background then ten distinct colours.</summary>
    public static readonly IReadOnlyList<(byte R, byte G, byte B)> Colours =
    [
        (0, 0, 0), (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
        (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    ];

    readonly FashionMnistIdx source;

    /// <summary>A split of <paramref name="count"/> scenes of <paramref name="size"/>² pixels from the IDX files under <paramref name="root"/>.</summary>
    public FashionMnistScenesDataset(string? root, string split, int count, int size = 128, int seed = 0, long ignoreIndex = 255)
        : base("fmnist_scenes", Names, Colours, count, size, minSize: 32, seed, split, ignoreIndex)
    {
        source = FashionMnistIdx.Load(root ?? FashionMnistIdx.DefaultRoot, split == "train" ? "train" : "t10k");
    }

    /// <inheritdoc/>
    protected override unsafe SegmentationSample Load(int index)
    {
        var (rng, image, mask) = NewCanvas(index);
        // Dark canvas with faint noise, so that the threshold separates garments from it.
        for (int y = 0; y < Size; y++)
        {
            byte* row = (byte*)image.Ptr(y);
            for (int i = 0; i < 3 * Size; i++) row[i] = (byte)rng.Next(0, 24);
        }
        int garments = rng.Next(2, 6);
        using var patch = new Mat(FashionMnistIdx.Side, FashionMnistIdx.Side, MatType.CV_8UC1);
        using var scaled = new Mat();
        for (int g = 0; g < garments; g++)
        {
            int item = rng.Next(source.Count);
            int side = (int)Math.Round(Size * (0.3 + 0.3 * rng.NextDouble()));
            int x0 = rng.Next(-side / 4, Size - 3 * side / 4), y0 = rng.Next(-side / 4, Size - 3 * side / 4);
            double tr = 0.6 + 0.4 * rng.NextDouble(), tg = 0.6 + 0.4 * rng.NextDouble(), tb = 0.6 + 0.4 * rng.NextDouble();
            byte label = (byte)(source.Labels[item] + 1);
            fixed (byte* src = &source.Pixels[item * FashionMnistIdx.Side * FashionMnistIdx.Side])
                Buffer.MemoryCopy(src, (void*)patch.Data, FashionMnistIdx.Side * FashionMnistIdx.Side, FashionMnistIdx.Side * FashionMnistIdx.Side);
            Cv2.Resize(patch, scaled, new OpenCvSharp.Size(side, side), 0, 0, InterpolationFlags.Linear);
            for (int py = 0; py < side; py++)
            {
                int y = y0 + py;
                if ((uint)y >= (uint)Size) continue;
                byte* s = (byte*)scaled.Ptr(py);
                byte* img = (byte*)image.Ptr(y);
                byte* m = (byte*)mask.Ptr(y);
                for (int px = 0; px < side; px++)
                {
                    int x = x0 + px;
                    if ((uint)x >= (uint)Size) continue;
                    int v = s[px];
                    // Alpha-blend by intensity so that garment edges look natural, label by threshold.
                    double a = v / 255.0;
                    img[3 * x] = (byte)(a * v * tb + (1 - a) * img[3 * x]);
                    img[3 * x + 1] = (byte)(a * v * tg + (1 - a) * img[3 * x + 1]);
                    img[3 * x + 2] = (byte)(a * v * tr + (1 - a) * img[3 * x + 2]);
                    if (v > Threshold) m[x] = label;
                }
            }
        }
        if (IgnoreIndex is < 0 or > 255)
        {
            var wide = new Mat();
            mask.ConvertTo(wide, MatType.CV_32SC1);
            mask.Dispose();
            mask = wide;
        }
        return new SegmentationSample(image, mask, $"fmnist_{Split}_{index:D6}");
    }
}
