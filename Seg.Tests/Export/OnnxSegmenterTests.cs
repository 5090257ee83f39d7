using OpenCvSharp;
using Seg.Data;
using Seg.Data.Transforms;
using Seg.Models;
using Seg.Models.Export;
using Seg.Onnx;
using Seg.Tests.Models;
using Seg.Train.Config;
using Seg.Train.Evaluation;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Tests.Export;

/// <summary>
/// <see cref="OnnxSegmenter"/> against Seg's own evaluation path: the image through Seg.Data's normalize transform
/// into a tensor, then <see cref="Inference.Probabilities"/> (whole image, sliding window, flip) on the TorchSharp
/// model in float64 (see <see cref="OnnxEquivalenceTests"/> for why float64).
/// </summary>
public sealed class OnnxSegmenterTests : IDisposable
{
    const int Classes = 4;
    static readonly string[] ClassNames = ["background", "disc", "square", "ring"];
    static readonly (byte, byte, byte)[] Palette = [(0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255)];

    readonly OnnxTestKit.TempDir dir = new();
    readonly nn.Module<Tensor, Tensor> model;

    public OnnxSegmenterTests()
    {
        Seg.Core.SegRuntime.Initialize();
        model = ModelFactory.Create("unet", Classes, new ModelOptions { UnetDepth = 2, UnetBaseWidth = 8 });
        // The weights come from a generator of this test's own: tests on other threads draw from the global one
        // (manual_seed here would not make the model the same from run to run). He-scaled weights, no biases; with
        // this seed every test image gets several classes, which the tests check (seeds 1 and 11 give one class).
        // Batch norm stays the identity here (OnnxEquivalenceTests randomises it): random running means swamp the
        // small activations of an untrained network, and every pixel would get the same class.
        var generator = new Generator(3);
        using (no_grad())
            foreach (var (name, p) in model.named_parameters())
                if (p.dim() > 1) p.copy_(randn(p.shape, generator: generator) * Math.Sqrt(2.0 * p.shape[0] / p.numel()));
                else if (name.EndsWith("bias")) p.zero_(); // no class wins everywhere by its bias alone
        model.eval();
    }

    public void Dispose()
    {
        model.Dispose();
        dir.Dispose();
    }

    static OnnxModelMetadata Metadata(bool normalize = true, OnnxInferenceSettings? inference = null) => new()
    {
        ClassNames = ClassNames,
        Palette = Palette,
        MeanRgb = normalize ? Normalize.ImageNetMean : null,
        StdRgb = normalize ? Normalize.ImageNetStd : null,
        ModelName = "unet",
        Iteration = 1234,
        Inference = inference,
    };

    string Export(string name, OnnxModelMetadata metadata, bool argMax = false, (int, int)? staticSize = null)
    {
        var path = dir.File(name);
        OnnxExporter.Export(model, path, new OnnxExportOptions { ArgMax = argMax, StaticSize = staticSize, Metadata = metadata.ToDictionary() });
        return path;
    }

    static Mat RandomImage(int h, int w, int seed)
    {
        var image = new Mat(h, w, MatType.CV_8UC3);
        var bytes = new byte[h * w * 3];
        new Random(seed).NextBytes(bytes);
        for (int y = 0; y < h; y++) // a dark-to-bright ramp with a bright block, under the noise
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++)
                {
                    int i = (y * w + x) * 3 + c, ramp = 255 * x / w, block = y < h / 2 && x < w / 3 ? 200 : 0;
                    bytes[i] = (byte)Math.Clamp((ramp + block) / 2 + bytes[i] / 4 - 32 * c, 0, 255);
                }
        System.Runtime.InteropServices.Marshal.Copy(bytes, 0, image.Data, bytes.Length); // a new Mat is continuous
        Cv2.GaussianBlur(image, image, new OpenCvSharp.Size(5, 5), 1.5); // some structure, so that classes vary
        return image;
    }

    // Seg's validation input: the normalize transform (or the loader's /255 without it), as a [1,3,H,W] RGB tensor.
    static Tensor SegInput(Mat image, bool normalize)
    {
        var sample = new SegmentationSample(image, new Mat(image.Rows, image.Cols, MatType.CV_8UC1, new OpenCvSharp.Scalar(255)), "x");
        using var normalized = normalize ? new Normalize().Apply(sample, TransformContext.For(0, 0, 0)).Image : null;
        int h = image.Rows, w = image.Cols;
        var chw = new float[3 * h * w];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) // BGR Mat → RGB planes
                    chw[((2 - c) * h + y) * w + x] = normalized is null ? image.At<Vec3b>(y, x)[c] * (1f / 255f) : normalized.At<Vec3f>(y, x)[c];
        sample.Mask.Dispose();
        return tensor(chw, [1, 3, h, w]);
    }

    double[] EvalProbabilities(Tensor input, EvalConfig eval)
    {
        model.to(ScalarType.Float64);
        try
        {
            using var _ = no_grad();
            using var p = Inference.Probabilities(model, input.to(ScalarType.Float64), eval);
            return ModelFixtures.Values(p);
        }
        finally { model.to(ScalarType.Float32); }
    }

    public static TheoryData<string, int, int> Settings => new()
    {
        { "whole", 45, 61 },
        { "whole+flip", 45, 61 },
        { "slide", 45, 61 },        // windows overlap in both directions
        { "slide+flip", 45, 61 },
        { "slide", 20, 13 },        // smaller than the window: padded, then cropped
    };

    [Theory]
    [MemberData(nameof(Settings))]
    public void ProbabilitiesAndLabelsAreThoseOfSegsEval(string setting, int h, int w)
    {
        bool slide = setting.StartsWith("slide"), flip = setting.EndsWith("flip");
        var eval = new EvalConfig { Mode = slide ? "slide" : "whole", Window = [32, 24], Stride = [20, 16], Flip = flip };
        var settings = new OnnxInferenceSettings { Slide = slide, Window = (32, 24), Stride = (20, 16), Flip = flip };
        var path = Export("m.onnx", Metadata());
        using var segmenter = OnnxSegmenter.Load(path, new OnnxSegmenterOptions { Inference = settings });
        using var image = RandomImage(h, w, h * w);
        using var input = SegInput(image, normalize: true);
        var expected = EvalProbabilities(input, eval);

        var probabilities = segmenter.PredictProbabilities(image);
        Assert.Equal((Classes, h, w), (probabilities.Classes, probabilities.Height, probabilities.Width));
        var (diff, _) = OnnxTestKit.Compare(probabilities.Values.Select(v => (double)v).ToArray(), expected);
        Assert.True(diff <= 1e-5, $"{setting}: max|Δp| = {diff}");

        using var labels = segmenter.Predict(image);
        Assert.Equal(MatType.CV_32SC1, labels.Type());
        Assert.Equal((h, w), (labels.Rows, labels.Cols));
        var seen = new HashSet<int>();
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                double P(int c) => expected[(c * h + y) * w + x];
                int best = Enumerable.Range(0, Classes).MaxBy(P), label = labels.At<int>(y, x);
                Assert.True(label == best || P(best) - P(label) <= 1e-5, $"{setting} ({y},{x}): label {label}, Seg's arg-max {best}");
                seen.Add(label);
            }
        Assert.True(seen.Count > 1, "the test image should not be one class");
    }

    [Fact]
    public void WithoutNormalisationTheImageIsScaledToUnitRangeAsSegsLoaderDoes()
    {
        var path = Export("m.onnx", Metadata(normalize: false));
        using var segmenter = OnnxSegmenter.Load(path);
        using var image = RandomImage(30, 22, 5);
        using var input = SegInput(image, normalize: false);
        var expected = EvalProbabilities(input, new EvalConfig());
        var (diff, _) = OnnxTestKit.Compare(segmenter.PredictProbabilities(image).Values.Select(v => (double)v).ToArray(), expected);
        Assert.True(diff <= 1e-5, $"max|Δp| = {diff}");
    }

    [Fact]
    public void GreyAndBgraImagesAreTakenAsTheirBgrConversion()
    {
        using var segmenter = OnnxSegmenter.Load(Export("m.onnx", Metadata()));
        using var bgr = RandomImage(25, 19, 2);
        using var grey = bgr.CvtColor(ColorConversionCodes.BGR2GRAY);
        using var greyAsBgr = grey.CvtColor(ColorConversionCodes.GRAY2BGR);
        using var bgra = bgr.CvtColor(ColorConversionCodes.BGR2BGRA);
        Assert.Equal(segmenter.PredictProbabilities(greyAsBgr).Values, segmenter.PredictProbabilities(grey).Values);
        Assert.Equal(segmenter.PredictProbabilities(bgr).Values, segmenter.PredictProbabilities(bgra).Values);
        using var floats = new Mat(4, 4, MatType.CV_32FC3);
        Assert.Throws<ArgumentException>(() => segmenter.Predict(floats));
    }

    [Fact]
    public void LoadReadsTheMetadataAndTakesTheFilesEvalSettingsUnlessTold()
    {
        var stored = new OnnxInferenceSettings { Slide = true, Window = (40, 30), Stride = (20, 10), Flip = true };
        var path = Export("m.onnx", Metadata(inference: stored));
        using (var segmenter = OnnxSegmenter.Load(path))
        {
            var m = segmenter.Metadata;
            Assert.Equal(ClassNames, m.ClassNames);
            Assert.Equal(Palette, m.Palette);
            Assert.Equal(Normalize.ImageNetMean, m.MeanRgb);
            Assert.Equal(Normalize.ImageNetStd, m.StdRgb);
            Assert.Equal("unet", m.ModelName);
            Assert.Equal(1234, m.Iteration);
            Assert.Equal(stored, segmenter.Inference);
            Assert.Equal(Classes, segmenter.NumClasses);
            Assert.False(segmenter.OutputsLabels);
            Assert.Null(segmenter.StaticSize);
        }
        using (var segmenter = OnnxSegmenter.Load(path, new OnnxSegmenterOptions { Inference = OnnxInferenceSettings.WholeImage }))
            Assert.Equal(OnnxInferenceSettings.WholeImage, segmenter.Inference);
    }

    [Fact]
    public void AnArgMaxFileGivesLabelsOnly()
    {
        var logitsFile = Export("logits.onnx", Metadata(inference: new OnnxInferenceSettings { Flip = true }));
        var labelsFile = Export("labels.onnx", Metadata(inference: new OnnxInferenceSettings { Flip = true }), argMax: true);
        using var image = RandomImage(33, 27, 9);
        using var withLogits = OnnxSegmenter.Load(logitsFile, new OnnxSegmenterOptions { Inference = OnnxInferenceSettings.WholeImage });
        // The file's flip setting cannot apply to labels, so the file alone means the whole image.
        using var withLabels = OnnxSegmenter.Load(labelsFile);
        Assert.True(withLabels.OutputsLabels);
        Assert.Equal(OnnxInferenceSettings.WholeImage, withLabels.Inference);
        var p = withLogits.PredictProbabilities(image);
        using var labels = withLabels.Predict(image);
        using var expected = p.ArgMax();
        for (int y = 0; y < p.Height; y++)
            for (int x = 0; x < p.Width; x++)
            {
                int label = labels.At<int>(y, x), best = expected.At<int>(y, x);
                Assert.True(label == best || p[best, y, x] - p[label, y, x] <= 1e-6, $"({y},{x}): label {label}, arg-max of the probabilities {best}");
            }
        Assert.Throws<InvalidOperationException>(() => withLabels.PredictProbabilities(image));
        var e = Assert.Throws<ArgumentException>(() => OnnxSegmenter.Load(labelsFile, new OnnxSegmenterOptions { Inference = new OnnxInferenceSettings { Flip = true } }));
        Assert.Contains("--argmax", e.Message);
    }

    [Fact]
    public void AStaticFileTakesItsSizeOnly()
    {
        var path = Export("m.onnx", Metadata(), staticSize: (32, 24));
        using var segmenter = OnnxSegmenter.Load(path);
        Assert.Equal((32, 24), segmenter.StaticSize);
        using var right = RandomImage(32, 24, 1);
        using var labels = segmenter.Predict(right);
        using var wrong = RandomImage(30, 24, 1);
        var e = Assert.Throws<ArgumentException>(() => segmenter.Predict(wrong));
        Assert.Contains("32x24", e.Message);
        Assert.Contains("30x24", e.Message);
        // A sliding window of the file's size works on any image.
        using var sliding = OnnxSegmenter.Load(path, new OnnxSegmenterOptions { Inference = new OnnxInferenceSettings { Slide = true, Window = (32, 24), Stride = (16, 12) } });
        using var big = sliding.Predict(RandomImage(50, 40, 3));
        Assert.Equal((50, 40), (big.Rows, big.Cols));
    }

    [Fact]
    public void LoadErrorsNameTheFile()
    {
        Assert.Throws<FileNotFoundException>(() => OnnxSegmenter.Load(dir.File("absent.onnx")));
        File.WriteAllText(dir.File("junk.onnx"), "not a model");
        var junk = Assert.Throws<InvalidDataException>(() => OnnxSegmenter.Load(dir.File("junk.onnx")));
        Assert.Contains(dir.File("junk.onnx"), junk.Message);

        var props = new Dictionary<string, string>(Metadata().ToDictionary()) { [OnnxModelMetadata.Keys.Palette] = "[[1,2]]" };
        OnnxExporter.Export(model, dir.File("bad.onnx"), new OnnxExportOptions { Metadata = props });
        var bad = Assert.Throws<InvalidDataException>(() => OnnxSegmenter.Load(dir.File("bad.onnx")));
        Assert.Contains(dir.File("bad.onnx"), bad.Message);
        Assert.Contains(OnnxModelMetadata.Keys.Palette, bad.Message);
    }

    [Fact]
    public void MetadataRoundTripsThroughItsDictionary()
    {
        var metadata = Metadata(inference: new OnnxInferenceSettings { Slide = true, Window = (9, 8), Stride = (7, 6), Flip = true });
        var back = OnnxModelMetadata.Parse(metadata.ToDictionary(), "test");
        Assert.Equal(metadata.ClassNames, back.ClassNames);
        Assert.Equal(metadata.Palette, back.Palette);
        Assert.Equal(metadata.MeanRgb, back.MeanRgb);
        Assert.Equal(metadata.StdRgb, back.StdRgb);
        Assert.Equal((metadata.ModelName, metadata.Iteration, metadata.Inference), (back.ModelName, back.Iteration, back.Inference));
        var empty = OnnxModelMetadata.Parse(new Dictionary<string, string>(), "test");
        Assert.Empty(empty.ClassNames);
        Assert.Null(empty.MeanRgb);
        Assert.Null(empty.Inference);
    }
}
