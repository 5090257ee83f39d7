using OpenCvSharp;
using Seg.Data;
using Seg.Data.Transforms;

namespace Seg.Tests.Data;

public class TransformTests
{
    static SegmentationSample Fixture(int seed = 1, int h = 90, int w = 120, int classes = 6)
    {
        var mask = DataFixtures.BlockMask(h, w, classes, seed);
        return new SegmentationSample(DataFixtures.ImageFromMask(mask), mask, "fx");
    }

    static Dictionary<string, object?> Args(params (string Key, object? Value)[] kv) => kv.ToDictionary(p => p.Key, p => p.Value);

    /// <summary>
    /// Alignment oracle: wherever a pixel's 3×3 mask neighbourhood holds one label (away from edges, where
    /// bilinear image sampling blends), the image must still show that label's fixture colour.
    /// </summary>
    static void AssertAligned(SegmentationSample s, long ignore = 255)
    {
        int rows = s.Mask.Rows, cols = s.Mask.Cols, interior = 0;
        Assert.Equal(s.Image.Size(), s.Mask.Size());
        for (int y = 1; y < rows - 1; y++)
            for (int x = 1; x < cols - 1; x++)
            {
                byte l = s.Mask.At<byte>(y, x);
                if (l == ignore) continue;
                bool uniform = true;
                for (int dy = -1; dy <= 1 && uniform; dy++)
                    for (int dx = -1; dx <= 1; dx++)
                        if (s.Mask.At<byte>(y + dy, x + dx) != l) { uniform = false; break; }
                if (!uniform) continue;
                interior++;
                var c = s.Image.At<Vec3b>(y, x);
                var e = DataFixtures.ColourOf(l);
                Assert.True(Math.Abs(c.Item0 - e.Item0) <= 12 && Math.Abs(c.Item1 - e.Item1) <= 12 && Math.Abs(c.Item2 - e.Item2) <= 12,
                    $"pixel ({x},{y}) label {l}: image {c.Item0},{c.Item1},{c.Item2} vs expected {e.Item0},{e.Item1},{e.Item2}");
            }
        Assert.True(interior > rows * cols / 4, $"only {interior} interior pixels checked");
    }

    static HashSet<byte> Labels(Mat m)
    {
        var set = new HashSet<byte>();
        int rows = m.Rows, cols = m.Cols;
        for (int y = 0; y < rows; y++) for (int x = 0; x < cols; x++) set.Add(m.At<byte>(y, x));
        return set;
    }

    [Theory]
    [InlineData("random_scale")]
    [InlineData("random_crop")]
    [InlineData("horizontal_flip")]
    [InlineData("random_rotate")]
    [InlineData("resize")]
    [InlineData("color_jitter")]
    [InlineData("gaussian_blur")]
    public void EveryTransformKeepsImageAndMaskAlignedAndMasksNearest(string type)
    {
        var args = type switch
        {
            "random_scale" => Args(("range", new object[] { 0.6, 1.7 })),
            "random_crop" => Args(("size", new object[] { 100, 140 })), // taller and wider than some inputs: pads
            "horizontal_flip" => Args(("p", 1.0)),
            "random_rotate" => Args(("degrees", 30), ("p", 1.0)),
            "resize" => Args(("size", new object[] { 64, 200 })),
            "color_jitter" => Args(("brightness", 0.0), ("contrast", 0.0), ("saturation", 0.0), ("hue", 0.0)),
            "gaussian_blur" => Args(("kernel", 3), ("sigma", new object[] { 0.1, 0.2 }), ("p", 1.0)),
            _ => throw new ArgumentException(type),
        };
        var t = TransformFactory.Create(type, args);
        for (int seed = 0; seed < 4; seed++)
        {
            using var input = Fixture(seed);
            var before = Labels(input.Mask);
            var output = t.Apply(input, TransformContext.For(seed, 0, 0));
            try
            {
                AssertAligned(output);
                // Nearest-neighbour only: no label appears that was not there (padding adds only the ignore index).
                Assert.Subset(before.Append((byte)255).ToHashSet(), Labels(output.Mask));
            }
            finally
            {
                if (!ReferenceEquals(output.Image, input.Image)) output.Image.Dispose();
                if (!ReferenceEquals(output.Mask, input.Mask)) output.Mask.Dispose();
            }
        }
    }

    [Fact]
    public void FlipMirrorsExactly()
    {
        using var input = Fixture();
        using var output = new HorizontalFlip(1.0).Apply(input, TransformContext.For(0, 0, 0));
        int w = input.Mask.Cols, h = input.Mask.Rows;
        for (int y = 0; y < h; y += 7)
            for (int x = 0; x < w; x++)
            {
                Assert.Equal(input.Mask.At<byte>(y, w - 1 - x), output.Mask.At<byte>(y, x));
                Assert.Equal(input.Image.At<Vec3b>(y, w - 1 - x), output.Image.At<Vec3b>(y, x));
            }
    }

    [Fact]
    public void CropPadsImageWithFillAndMaskWithIgnoreIndex()
    {
        using var input = Fixture(h: 20, w: 30);
        var crop = new RandomCrop(40, 50, [10, 20, 30]);
        using var output = crop.Apply(input, TransformContext.For(0, 0, 0, ignoreIndex: 250));
        Assert.Equal(new Size(50, 40), output.Image.Size());
        // The input fits, so it is placed at the origin; the rest is padding.
        Assert.Equal(input.Mask.At<byte>(5, 5), output.Mask.At<byte>(5, 5));
        Assert.Equal(250, output.Mask.At<byte>(39, 49));
        Assert.Equal(250, output.Mask.At<byte>(25, 3));
        Assert.Equal(new Vec3b(30, 20, 10), output.Image.At<Vec3b>(39, 49)); // BGR of RGB (10, 20, 30)
    }

    [Fact]
    public void CropWithoutPaddingIsASubRectangle()
    {
        using var input = Fixture(h: 50, w: 60);
        using var output = new RandomCrop(20, 25).Apply(input, TransformContext.For(3, 1, 2));
        // Find the offset by brute force over all placements; exactly the content of one placement must match.
        int matches = 0;
        for (int y0 = 0; y0 <= 30; y0++)
            for (int x0 = 0; x0 <= 35; x0++)
            {
                using var sub = input.Image[new Rect(x0, y0, 25, 20)];
                using var subMask = input.Mask[new Rect(x0, y0, 25, 20)];
                using var d1 = new Mat();
                using var d2 = new Mat();
                Cv2.Absdiff(sub, output.Image, d1);
                Cv2.Absdiff(subMask, output.Mask, d2);
                if (Cv2.CountNonZero(d1.Reshape(1)) == 0 && Cv2.CountNonZero(d2) == 0) matches++;
            }
        Assert.True(matches >= 1);
    }

    [Fact]
    public void NormalizeMatchesTheFormulaInRgbOrder()
    {
        using var image = new Mat(1, 1, MatType.CV_8UC3, new Scalar(128, 0, 255)); // B=128, G=0, R=255
        using var mask = new Mat(1, 1, MatType.CV_8UC1, Scalar.All(1));
        using var input = new SegmentationSample(image.Clone(), mask.Clone(), "n");
        using var output = (SegmentationSample)new Normalize().Apply(input, TransformContext.For(0, 0, 0));
        var v = output.Image.At<Vec3f>(0, 0);
        Assert.Equal((255 / 255.0 - 0.485) / 0.229, v.Item2, 5); // R
        Assert.Equal((0 / 255.0 - 0.456) / 0.224, v.Item1, 5);   // G
        Assert.Equal((128 / 255.0 - 0.406) / 0.225, v.Item0, 5); // B
        Assert.Equal(2.2489, (1 - 0.485) / 0.229, 3);
    }

    [Fact]
    public void HueHalfTurnTurnsRedIntoCyanAndBrightnessScalesUniformly()
    {
        using var red = new SegmentationSample(new Mat(4, 4, MatType.CV_8UC3, new Scalar(0, 0, 255)), new Mat(4, 4, MatType.CV_8UC1, Scalar.All(0)), "r");
        // hue amount 0.5: the shift is drawn in [-0.5, 0.5]; a seed whose shift is about ±0.5 turns red into cyan.
        var jitter = new ColorJitter(0, 0, 0, 0.5);
        bool sawCyan = false;
        for (int seed = 0; seed < 20000 && !sawCyan; seed++)
        {
            var ctx = TransformContext.For(seed, 0, 0);
            var probe = new Random(SeedMix.Combine(seed, 0, 0));
            probe.NextDouble(); probe.NextDouble(); probe.NextDouble(); probe.NextDouble(); // p, brightness, contrast, saturation
            double h = (2 * probe.NextDouble() - 1) * 0.5;
            if (Math.Abs(Math.Abs(h) - 0.5) > 0.0019) continue; // rounds to a shift of 128 of 256
            using var output = jitter.Apply(red, ctx);
            var c = output.Image.At<Vec3b>(2, 2);
            Assert.True(c.Item0 > 240 && c.Item1 > 240 && c.Item2 < 15, $"expected cyan, got BGR {c.Item0},{c.Item1},{c.Item2}");
            sawCyan = true;
        }
        Assert.True(sawCyan);

        using var grey = Fixture();
        using var bright = new ColorJitter(0.5, 0, 0, 0).Apply(grey, TransformContext.For(7, 0, 0));
        // One factor b for the whole image: out = round(in * b) wherever it does not saturate.
        double? factor = null;
        int rows = grey.Image.Rows, cols = grey.Image.Cols;
        for (int y = 0; y < rows; y += 5)
            for (int x = 0; x < cols; x += 5)
            {
                var i = grey.Image.At<Vec3b>(y, x);
                var o = bright.Image.At<Vec3b>(y, x);
                if (o.Item1 == 255 || i.Item1 < 100) continue;
                factor ??= o.Item1 / (double)i.Item1;
                Assert.Equal(factor.Value * i.Item1, o.Item1, 0.6 + factor.Value);
            }
        Assert.NotNull(factor);
        Assert.Same(grey.Mask, bright.Mask);
    }

    [Fact]
    public void PipelineIsDeterministicBySeedEpochAndIndex()
    {
        var pipeline = TransformPipeline.FromConfig(new (string, IReadOnlyDictionary<string, object?>)[]
        {
            ("random_scale", Args(("range", new[] { "0.5", "2.0" }))), // YAML scalars arrive as strings
            ("random_crop", Args(("size", 64))),
            ("horizontal_flip", Args()),
            ("random_rotate", Args(("degrees", 15))),
            ("color_jitter", Args()),
            ("gaussian_blur", Args()),
            ("normalize", Args()),
        });
        Mat Run(int seed, long epoch, long index)
        {
            using var input = Fixture(5);
            using var output = pipeline.Apply(input, seed, epoch, index);
            Assert.Equal(MatType.CV_32FC3, output.Image.Type());
            Assert.Equal(new Size(64, 64), output.Image.Size());
            var both = new Mat();
            using var m = new Mat();
            output.Mask.ConvertTo(m, MatType.CV_32FC1);
            using var mask3 = new Mat();
            Cv2.Merge([m, m, m], mask3);
            Cv2.VConcat(output.Image, mask3, both);
            return both;
        }
        using var a = Run(1, 2, 3);
        using var b = Run(1, 2, 3);
        using var c = Run(1, 2, 4);
        using var d = Run(2, 2, 3);
        Assert.Equal(0, Cv2.Norm(a, b, NormTypes.L1));
        Assert.NotEqual(0, Cv2.Norm(a, c, NormTypes.L1));
        Assert.NotEqual(0, Cv2.Norm(a, d, NormTypes.L1));
        Assert.NotNull(pipeline.Normalization);
    }

    [Fact]
    public void ConfigErrorsNameTheKeyAndValueAndListValidOnes()
    {
        var type = Assert.Throws<ArgumentException>(() => TransformFactory.Create("flip", Args()));
        Assert.Contains("'flip'", type.Message);
        foreach (var t in TransformFactory.Types) Assert.Contains(t, type.Message);

        var key = Assert.Throws<ArgumentException>(() => TransformFactory.Create("random_crop", Args(("sise", 3))));
        Assert.Contains("'sise'", key.Message);
        Assert.Contains("size, fill", key.Message);

        var value = Assert.Throws<ArgumentException>(() => TransformFactory.Create("random_scale", Args(("range", new object[] { 2.0, "abc" }))));
        Assert.Contains("'range'", value.Message);
        Assert.Contains("'abc'", value.Message);
        Assert.Contains("random_scale", value.Message);

        var prob = Assert.Throws<ArgumentException>(() => TransformFactory.Create("horizontal_flip", Args(("p", 1.5))));
        Assert.Contains("1.5", prob.Message);
        var kernel = Assert.Throws<ArgumentException>(() => TransformFactory.Create("gaussian_blur", Args(("kernel", 4))));
        Assert.Contains("odd", kernel.Message);
        var required = Assert.Throws<ArgumentException>(() => TransformFactory.Create("resize", Args()));
        Assert.Contains("'size' is required", required.Message);

        var pos = Assert.Throws<ArgumentException>(() => TransformPipeline.FromConfig(new (string, IReadOnlyDictionary<string, object?>)[]
            { ("horizontal_flip", Args()), ("normalize", Args(("std", new object[] { 1, 0, 1 }))) }));
        Assert.StartsWith("transforms[1]", pos.Message);
        Assert.Contains("'std'", pos.Message);
    }

    [Fact]
    public void PhotometricStepAfterNormalizeSaysWhy()
    {
        var pipeline = new TransformPipeline([new Normalize(), new ColorJitter()]);
        using var input = Fixture();
        var e = Assert.Throws<InvalidOperationException>(() => pipeline.Apply(input, TransformContext.For(0, 0, 0)));
        Assert.Contains("before 'normalize'", e.Message);
    }
}
