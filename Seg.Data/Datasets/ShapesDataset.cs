using OpenCvSharp;

namespace Seg.Data.Datasets;

/// <summary>
/// Procedural scenes of circles, squares and triangles (classes 1–3; 0 is background) on textured backgrounds,
/// with overlap (later shapes occlude earlier ones, in the mask too) and pixel noise. Squares are nearly
/// axis-aligned and triangles nearly upright (±10°). Needs no files; sample i of a
/// split depends only on (seed, split, i, size), so any worker can make any sample in any order.
/// Shapes are drawn with enough contrast and size to be learnable quickly by a small network.
/// </summary>
public sealed class ShapesDataset : ProceduralDatasetBase
{
    /// <summary>Class names, label order.</summary>
    public static readonly IReadOnlyList<string> Names = ["background", "circle", "square", "triangle"];

    /// <summary>Colours for masks: black background, then red, green, blue-ish.</summary>
    public static readonly IReadOnlyList<(byte R, byte G, byte B)> Colours = [(0, 0, 0), (230, 25, 75), (60, 180, 75), (0, 130, 200)];

    /// <summary>A split of <paramref name="count"/> samples of <paramref name="size"/>² pixels.</summary>
    public ShapesDataset(int count, int size = 128, int seed = 0, string split = "train", long ignoreIndex = 255)
        : base("shapes", Names, Colours, count, size, minSize: 16, seed, split, ignoreIndex)
    {
    }

    /// <inheritdoc/>
    protected override unsafe SegmentationSample Load(int index)
    {
        var (rng, image, mask) = NewCanvas(index);
        double backgroundLuma = PaintBackground(image, rng);

        int shapes = rng.Next(1, 4);
        for (int s = 0; s < shapes; s++)
        {
            int label = rng.Next(1, 4);
            double radius = Size * (0.13 + 0.12 * rng.NextDouble());
            var centre = new Point2d(radius * 0.6 + rng.NextDouble() * (Size - 1.2 * radius),
                                     radius * 0.6 + rng.NextDouble() * (Size - 1.2 * radius));
            var colour = ContrastingColour(rng, backgroundLuma);
            if (label == 1)
            {
                var c = new Point((int)Math.Round(centre.X), (int)Math.Round(centre.Y));
                Cv2.Circle(image, c, (int)Math.Round(radius), colour, -1, LineTypes.AntiAlias);
                Cv2.Circle(mask, c, (int)Math.Round(radius), Scalar.All(label), -1, LineTypes.Link8);
            }
            else
            {
                // Squares stand nearly axis-aligned and triangles nearly upright (±10°): edge orientation then tells
                // the classes apart locally, which keeps the task learnable in minutes by a small network.
                int corners = label == 2 ? 4 : 3;
                double r = label == 2 ? radius * 1.2 : radius * 1.35;
                double jitter = (rng.NextDouble() - 0.5) * (20 * Math.PI / 180);
                double angle = (label == 2 ? Math.PI / 4 : -Math.PI / 2) + jitter;
                var poly = Enumerable.Range(0, corners).Select(k => new Point(
                    (int)Math.Round(centre.X + r * Math.Cos(angle + 2 * Math.PI * k / corners)),
                    (int)Math.Round(centre.Y + r * Math.Sin(angle + 2 * Math.PI * k / corners)))).ToArray();
                Cv2.FillPoly(image, [poly], colour, LineTypes.AntiAlias);
                Cv2.FillPoly(mask, [poly], Scalar.All(label), LineTypes.Link8);
            }
        }
        AddNoise(image, rng, amplitude: 6);
        if (IgnoreIndex is < 0 or > 255)
        {
            var wide = new Mat();
            mask.ConvertTo(wide, MatType.CV_32SC1);
            mask.Dispose();
            mask = wide;
        }
        return new SegmentationSample(image, mask, $"shapes_{Split}_{index:D6}");
    }

    // A mid-tone, low-saturation base colour plus one low-amplitude texture (gradient, stripes or checks).
    unsafe double PaintBackground(Mat image, Random rng)
    {
        double baseLevel = 70 + rng.NextDouble() * 110;
        var tint = new double[3];
        for (int c = 0; c < 3; c++) tint[c] = baseLevel + (rng.NextDouble() - 0.5) * 30;
        int kind = rng.Next(3);
        double amplitude = 8 + rng.NextDouble() * 14;
        double period = Size * (0.08 + rng.NextDouble() * 0.3);
        double theta = rng.NextDouble() * Math.PI;
        double dx = Math.Cos(theta), dy = Math.Sin(theta);
        for (int y = 0; y < Size; y++)
        {
            byte* row = (byte*)image.Ptr(y);
            for (int x = 0; x < Size; x++)
            {
                double t = x * dx + y * dy;
                double v = kind switch
                {
                    0 => amplitude * (2 * t / (Size * 1.42) - 0.5),
                    1 => amplitude * Math.Sin(2 * Math.PI * t / period),
                    _ => ((int)Math.Floor(x / period) + (int)Math.Floor(y / period)) % 2 == 0 ? amplitude / 2 : -amplitude / 2,
                };
                for (int c = 0; c < 3; c++) row[3 * x + c] = (byte)Math.Clamp(tint[c] + v, 0, 255);
            }
        }
        return baseLevel;
    }

    // A saturated random colour whose brightness differs clearly from the background's.
    static Scalar ContrastingColour(Random rng, double backgroundLuma)
    {
        for (int attempt = 0; ; attempt++)
        {
            double b = rng.Next(256), g = rng.Next(256), r = rng.Next(256);
            double luma = 0.114 * b + 0.587 * g + 0.299 * r;
            if (Math.Abs(luma - backgroundLuma) >= 60 || attempt >= 30)
                return Math.Abs(luma - backgroundLuma) >= 60 ? new Scalar(b, g, r)
                    : backgroundLuma > 128 ? new Scalar(b * 0.2, g * 0.2, r * 0.2) : new Scalar(255 - b * 0.2, 255 - g * 0.2, 255 - r * 0.2);
        }
    }

    unsafe void AddNoise(Mat image, Random rng, int amplitude)
    {
        for (int y = 0; y < Size; y++)
        {
            byte* row = (byte*)image.Ptr(y);
            for (int i = 0; i < 3 * Size; i++)
                row[i] = (byte)Math.Clamp(row[i] + rng.Next(-amplitude, amplitude + 1), 0, 255);
        }
    }
}
