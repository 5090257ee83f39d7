using System.Diagnostics;
using System.Security.Cryptography;
using Google.Protobuf;
using OpenCvSharp;
using Seg.Models;
using Seg.Models.Export;
using Seg.Models.Export.Proto;
using Seg.Onnx;
using Seg.Onnx.Imaging;
using static TorchSharp.torch;
using Keys = Seg.Onnx.OnnxModelMetadata.Keys;

namespace Seg.Tests.Export;

/// <summary>
/// <see cref="OnnxSegmenter"/> against hostile ONNX files and careless use (issue 20): each case is the smallest
/// file or call that showed the fault, made here, and is refused with a typed error naming the file (or the option),
/// without crashing the process.
/// </summary>
public sealed class OnnxHostileFileTests : IDisposable
{
    readonly OnnxTestKit.TempDir dir = new();

    public void Dispose() => dir.Dispose();

    static readonly string[] Names4 = ["a", "b", "c", "d"];

    // A 1x1 convolution from the 3 image planes to `classes` logits: the smallest segmentation model.
    string Conv(string name, int classes = 4, IReadOnlyDictionary<string, string>? metadata = null, object? declaredClasses = null)
    {
        var path = dir.File(name);
        var weights = Enumerable.Range(0, classes * 3).Select(i => (float)Math.Sin(i + 1)).ToArray();
        TinyOnnx.Write(path, [TinyOnnx.Image()], [TinyOnnx.Node("Conv", ["images", "w"], "logits")], [TinyOnnx.Logits(declaredClasses ?? classes)],
            metadata, [TinyOnnx.Constant("w", [classes, 3, 1, 1], weights)]);
        return path;
    }

    static Dictionary<string, string> Props(params (string Key, string Value)[] entries) => entries.ToDictionary(e => e.Key, e => e.Value);

    static Mat Grey(int h, int w, byte value) => new(h, w, MatType.CV_8UC3, new Scalar(value, value, value));

    // ---- Lifetime and threads -------------------------------------------------------------------------------

    [Fact]
    public void UseAfterDisposeIsAnObjectDisposedExceptionNotACrash()
    {
        var segmenter = OnnxSegmenter.Load(Conv("m.onnx"));
        segmenter.Dispose();
        segmenter.Dispose(); // twice is fine
        using var image = Grey(4, 4, 10);
        Assert.Throws<ObjectDisposedException>(() => segmenter.Predict(image));
        Assert.Throws<ObjectDisposedException>(() => segmenter.PredictProbabilities(image));
        Assert.Throws<ObjectDisposedException>(() => segmenter.ReadImage(dir.File("any.png")));
    }

    [Fact]
    public void DisposeWaitsForPredictionsInFlightOnOtherThreads()
    {
        // Before: Dispose freed the native session under a running Predict, and the process died (SIGSEGV).
        var segmenter = OnnxSegmenter.Load(Conv("m.onnx"));
        using var started = new CountdownEvent(4);
        var outcomes = new Exception?[4];
        var threads = Enumerable.Range(0, 4).Select(t => new Thread(() =>
        {
            using var image = Grey(96, 96, (byte)(40 * t));
            bool signalled = false;
            try
            {
                for (int i = 0; i < 10_000; i++) // ends at ObjectDisposedException, long before the count
                {
                    using var labels = segmenter.Predict(image);
                    Assert.Equal(96, labels.Rows);
                    if (!signalled) { started.Signal(); signalled = true; }
                }
            }
            catch (Exception e) { outcomes[t] = e; }
            finally { if (!signalled) started.Signal(); }
        })).ToList();
        threads.ForEach(t => t.Start());
        Assert.True(started.Wait(TimeSpan.FromMinutes(2)));
        segmenter.Dispose(); // while the four are predicting
        threads.ForEach(t => Assert.True(t.Join(TimeSpan.FromMinutes(2))));
        Assert.All(outcomes, e => Assert.IsType<ObjectDisposedException>(e));
    }

    [Theory]
    [InlineData(1_000_000)]
    [InlineData(-1)]
    public void AThreadCountBeyondTheProcessorsIsRefusedBeforeOnnxRuntimeSeesIt(int threads)
    {
        // Before: 1000000 threads took 18.8 GB and crashed the process.
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => OnnxSegmenter.Load(Conv("m.onnx"), new OnnxSegmenterOptions { Threads = threads }));
        Assert.Contains("OnnxSegmenterOptions.Threads", e.Message);
        Assert.Contains($"to {Environment.ProcessorCount} (Environment.ProcessorCount)", e.Message);
        using var ok = OnnxSegmenter.Load(Conv("m.onnx"), new OnnxSegmenterOptions { Threads = OnnxSegmenterOptions.MaxThreads });
    }

    // ---- Metadata against itself, the graph and its ranges ------------------------------------------------------

    public static TheoryData<string, string, string, string> BadMetadata => new()
    {
        // id, key, value, what the message says
        { "7-names-for-4-channels", Keys.ClassNames, """["a","b","c","d","e","f","g"]""", "outputs 4 classes but metadata 'class_names' has 7" },
        { "2-names-for-4-channels", Keys.ClassNames, """["a","b"]""", "outputs 4 classes but metadata 'class_names' has 2" },
        { "short-palette", Keys.Palette, "[[0,0,0],[1,1,1],[2,2,2]]", "outputs 4 classes but metadata 'palette' has 3 colours" },
        { "null-colour", Keys.Palette, "[[0,0,0],null,[2,2,2],[3,3,3]]", "metadata 'palette' should be" },
        { "null-name", Keys.ClassNames, """["a",null,"c","d"]""", "metadata 'class_names' should be" },
        { "std-1e-300", Keys.NormalizationStd, "[1e-300,0.2,0.2]", "metadata 'normalization_std' should be" },
        { "mean-1e308", Keys.NormalizationMean, "[1e308,0.5,0.5]", "metadata 'normalization_mean' should be" },
        { "graph-hash-not-hex", Keys.GraphSha256, "xyz", "metadata 'graph_sha256' should be 64 lower-case hex digits" },
    };

    [Theory]
    [MemberData(nameof(BadMetadata))]
    public void MetadataInconsistentWithItselfOrTheGraphOrOutOfRangeIsRefusedNamingTheKey(string id, string key, string value, string expected)
    {
        var props = Props((Keys.ClassNames, """["a","b","c","d"]"""), (Keys.Palette, "[[0,0,0],[1,1,1],[2,2,2],[3,3,3]]"),
            (Keys.NormalizationMean, "[0.5,0.5,0.5]"), (Keys.NormalizationStd, "[0.2,0.2,0.2]"));
        props[key] = value;
        var path = Conv(id + ".onnx", metadata: props);
        var e = Assert.Throws<InvalidDataException>(() => OnnxSegmenter.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains(expected, e.Message);
    }

    public static TheoryData<string, string, string> BadWindows => new()
    {
        // Before: pixels between windows got 0/0 logits, NaN, class 0.
        { "stride-beyond-window", "[8,8]", "[9,8]" },
        // Before: OutOfMemoryException, OverflowException or an Array.Copy error naming nothing.
        { "window-1e9", "[1000000000,1000000000]", "[1,1]" },
        { "window-zero", "[0,8]", "[1,1]" },
    };

    [Theory]
    [MemberData(nameof(BadWindows))]
    public void ABadSlidingWindowInTheMetadataIsRefusedNamingTheKeys(string id, string window, string stride)
    {
        var path = Conv(id + ".onnx", metadata: Props((Keys.EvalMode, "slide"), (Keys.EvalWindow, window), (Keys.EvalStride, stride), (Keys.EvalFlip, "false")));
        var before = GC.GetTotalAllocatedBytes();
        var e = Assert.Throws<InvalidDataException>(() => OnnxSegmenter.Load(path));
        Assert.True(GC.GetTotalAllocatedBytes() - before < 64 << 20, "allocated for the window");
        Assert.Contains(path, e.Message);
        Assert.Contains(Keys.EvalWindow, e.Message);
    }

    [Fact]
    public void AWindowOverTheMemoryBudgetIsRefusedAtLoadNamingTheKeyOrTheOption()
    {
        // 16384 x 16384 is a legal side, but its buffers (~9 GiB with 4 classes) are not within 1 GiB.
        var path = Conv("big-window.onnx", metadata: Props((Keys.EvalMode, "slide"), (Keys.EvalWindow, "[16384,16384]"), (Keys.EvalStride, "[16384,16384]")));
        var e = Assert.Throws<InvalidDataException>(() => OnnxSegmenter.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains($"metadata '{Keys.EvalWindow}'", e.Message);
        Assert.Contains("OnnxSegmenterOptions.MaxImageBytes", e.Message);

        var options = new OnnxSegmenterOptions { Inference = new OnnxInferenceSettings { Slide = true, Window = (100_000, 100_000), Stride = (1, 1) } };
        var o = Assert.Throws<ArgumentException>(() => OnnxSegmenter.Load(Conv("m.onnx"), options));
        Assert.Contains("OnnxSegmenterOptions.Inference", o.Message);
        Assert.Contains($"at most {OnnxInferenceSettings.MaxWindowSide}", o.Message);
    }

    [Fact]
    public void AnImageOverTheMemoryBudgetIsRefusedBeforeItsTensorsAreMade()
    {
        using var segmenter = OnnxSegmenter.Load(Conv("m.onnx"), new OnnxSegmenterOptions { MaxImageBytes = 10_000 });
        Assert.Equal(12 + 4 * 4 + 4, segmenter.PipelineBytesPerPixel); // input, 4 logits, labels: float32 and int32
        using var small = Grey(16, 16, 1); // 256 px x 32 B = 8 KB
        using var _ = segmenter.Predict(small);
        using var big = Grey(20, 20, 1);   // 400 px x 32 B = 12.8 KB
        var e = Assert.Throws<ArgumentException>(() => segmenter.Predict(big));
        Assert.Contains("a 20x20 image needs 12800 bytes", e.Message);
        Assert.Contains("OnnxSegmenterOptions.MaxImageBytes", e.Message);
    }

    // ---- The graph -----------------------------------------------------------------------------------------

    [Fact]
    public void AModelWithASecondRequiredInputIsRefusedAtLoad()
    {
        var path = dir.File("two-inputs.onnx");
        TinyOnnx.Write(path, [TinyOnnx.Image(), TinyOnnx.Image("extra")], [TinyOnnx.Node("Add", ["images", "extra"], "logits")], [TinyOnnx.Logits(3)]);
        var e = Assert.Throws<InvalidDataException>(() => OnnxSegmenter.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("2 required inputs ('images', 'extra')", e.Message);
    }

    [Fact]
    public void ErrorsRaisedInsideOnnxRuntimeNameTheModelFile()
    {
        // A graph that only runs on 8x8 images (a fixed Reshape), declared dynamic: ONNX Runtime fails at run time.
        var path = dir.File("reshape.onnx");
        var shape = new TensorProto { Name = "shape", DataType = (int)TensorProto.Types.DataType.Int64 };
        shape.Dims.Add(4);
        shape.Int64Data.AddRange([1, 3, 8, 8]);
        TinyOnnx.Write(path, [TinyOnnx.Image()], [TinyOnnx.Node("Reshape", ["images", "shape"], "logits")], [TinyOnnx.Logits(3)], initializers: [shape]);
        using var segmenter = OnnxSegmenter.Load(path);
        using var image = Grey(16, 16, 1);
        var e = Assert.Throws<InvalidOperationException>(() => segmenter.Predict(image));
        Assert.Contains(path, e.Message);
        Assert.Contains("1x3x16x16", e.Message);
    }

    // ---- NaN and infinite logits -----------------------------------------------------------------------------

    // logits = sqrt(pixel/255 - 0.5): NaN in every plane of a pixel darker than 128 (hand-worked below).
    string SqrtModel()
    {
        var path = dir.File("sqrt.onnx");
        TinyOnnx.Write(path, [TinyOnnx.Image()], [TinyOnnx.Node("Sub", ["images", "half"], "centred"), TinyOnnx.Node("Sqrt", ["centred"], "logits")],
            [TinyOnnx.Logits(3)], Props((Keys.ClassNames, """["r","g","b"]""")), [TinyOnnx.Constant("half", [], [0.5f])]);
        return path;
    }

    static Mat ThreeDarkPixels()
    {
        var image = new Mat(2, 2, MatType.CV_8UC3, new Scalar(250, 200, 130)); // BGR: B bright, R the least bright
        image.Set(0, 0, new Vec3b(0, 0, 0));
        image.Set(0, 1, new Vec3b(10, 20, 30));
        image.Set(1, 0, new Vec3b(0, 255, 0)); // G bright, R and B dark: NaN in two planes, one pixel
        return image;
    }

    [Fact]
    public void NonFiniteLogitsAreAnErrorThatCountsThePixels()
    {
        // Before: NaN logits became class 0, exit 0.
        using var segmenter = OnnxSegmenter.Load(SqrtModel());
        using var image = ThreeDarkPixels();
        var e = Assert.Throws<InvalidDataException>(() => segmenter.Predict(image));
        Assert.Contains(segmenter.Path, e.Message);
        Assert.Contains("NaN or infinite logits at 3 of 4 pixels", e.Message);
        Assert.Contains("OnnxSegmenterOptions.AllowNonFiniteLogits", e.Message);
    }

    [Fact]
    public void AllowedNonFiniteLogitsAreLabelledMinusOneAndCounted()
    {
        using var segmenter = OnnxSegmenter.Load(SqrtModel(), new OnnxSegmenterOptions { AllowNonFiniteLogits = true });
        using var image = ThreeDarkPixels();
        var probabilities = segmenter.PredictProbabilities(image);
        Assert.Equal(3, probabilities.NonFinitePixels);
        using var labels = probabilities.ArgMax();
        // The one finite pixel (1,1) is R 130, G 200, B 250: sqrt(v/255 - 0.5) is largest for B, class 2.
        Assert.Equal([-1, -1, -1, 2], [labels.At<int>(0, 0), labels.At<int>(0, 1), labels.At<int>(1, 0), labels.At<int>(1, 1)]);
        using var painted = MaskColours.Colourise(labels, [(1, 1, 1), (2, 2, 2), (3, 3, 3)]);
        Assert.Equal(new Vec3b(255, 255, 255), painted.At<Vec3b>(0, 0));
        Assert.Equal(new Vec3b(3, 3, 3), painted.At<Vec3b>(1, 1));
    }

    // ---- metadata_props at scale ------------------------------------------------------------------------------

    [Fact]
    public void ManyMetadataEntriesAreRefusedFromTheFileBeforeOnnxRuntimeReadsThem()
    {
        // Before: 50k entries (750 KB) took more than 120 s in ONNX Runtime's managed metadata accessor.
        var many = Enumerable.Range(0, 50_000).ToDictionary(i => $"k{i}", i => "v");
        var path = Conv("many.onnx", metadata: many);
        var e = Assert.Throws<InvalidDataException>(() => OnnxSegmenter.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains($"more than {OnnxModelFile.MaxMetadataEntries} metadata_props entries", e.Message);

        // Up to the bound, a file loads, and its foreign keys are not read into memory.
        var allowed = Enumerable.Range(0, OnnxModelFile.MaxMetadataEntries - 1).ToDictionary(i => $"k{i}", i => "v");
        allowed[Keys.ClassNames] = """["a","b","c","d"]""";
        using var segmenter = OnnxSegmenter.Load(Conv("allowed.onnx", metadata: allowed));
        Assert.Equal(Names4, segmenter.Metadata.ClassNames);
    }

    [Fact]
    public void ASegKeyGivenTwiceIsRefused()
    {
        var path = Conv("twice.onnx");
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        model.MetadataProps.Add(new StringStringEntryProto { Key = Keys.ClassNames, Value = """["a","b","c","d"]""" });
        model.MetadataProps.Add(new StringStringEntryProto { Key = Keys.ClassNames, Value = """["w","x","y","z"]""" });
        File.WriteAllBytes(path, model.ToByteArray());
        var e = Assert.Throws<InvalidDataException>(() => OnnxSegmenter.Load(path));
        Assert.Contains("'class_names' is given twice", e.Message);
    }

    // ---- Integrity ---------------------------------------------------------------------------------------------

    [Fact]
    public void TheGraphsSha256IsWrittenByExportAndAFlippedWeightIsRefused()
    {
        SegRuntimeInit();
        using var model = ModelFactory.Create("unet", 3, new ModelOptions { UnetDepth = 1, UnetBaseWidth = 4 });
        model.eval();
        var path = dir.File("unet.onnx");
        OnnxExporter.Export(model, path, new OnnxExportOptions());
        // The oracle: protobuf's own parse of the file, the graph re-serialised and hashed.
        var parsed = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        var expected = Convert.ToHexStringLower(SHA256.HashData(parsed.Graph.ToByteArray()));
        Assert.Equal(expected, parsed.MetadataProps.Single(p => p.Key == OnnxExporter.GraphSha256Key).Value);
        using (var segmenter = OnnxSegmenter.Load(path))
            Assert.Equal(expected, segmenter.Metadata.GraphSha256);

        // One weight's lowest mantissa bit flipped in place: the file still parses, ONNX Runtime would run it.
        var bytes = File.ReadAllBytes(path);
        var weight = parsed.Graph.Initializer.First(t => t.RawData.Length >= 16).RawData.ToByteArray();
        int at = bytes.AsSpan().IndexOf(weight);
        Assert.True(at > 0);
        bytes[at + 4] ^= 1;
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<InvalidDataException>(() => OnnxSegmenter.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains($"not the {expected} recorded in metadata 'graph_sha256'", e.Message);
    }

    static void SegRuntimeInit() => Seg.Core.SegRuntime.Initialize();

    // ---- Files that are not regular files ----------------------------------------------------------------------

    string Fifo(string name)
    {
        var path = dir.File(name);
        using var p = Process.Start(new ProcessStartInfo("mkfifo", [path]) { UseShellExecute = false })!;
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
        return path;
    }

    [Fact]
    public async Task AFifoAsTheModelOrAnImageIsRefusedWithoutOpeningIt()
    {
        if (!OperatingSystem.IsLinux()) return;
        // Before: every reader blocked forever in open(2), waiting for a writer.
        var model = Fifo("model.onnx");
        var image = Fifo("image.png");
        var load = Task.Run(() => Assert.Throws<IOException>(() => OnnxSegmenter.Load(model)));
        var read = Task.Run(() => Assert.Throws<IOException>(() => ImageFiles.ReadHeader(image)));
        var sample = Task.Run(() => Assert.Throws<Seg.Data.BadSampleException>(() => Seg.Data.Imaging.SampleFiles.ReadImage(image)));
        await Task.WhenAll(load, read, sample).WaitAsync(TimeSpan.FromMinutes(1)); // TimeoutException: a reader blocked on the FIFO
        Assert.Contains($"ONNX model: {model} is a FIFO (named pipe), not a regular file", (await load).Message);
        Assert.Contains($"image: {image} is a FIFO", (await read).Message);
        Assert.Contains(image, (await sample).Message);
        using var segmenter = OnnxSegmenter.Load(Conv("m.onnx"));
        Assert.Contains(image, Assert.Throws<IOException>(() => segmenter.Predict(image)).Message);
    }

    [Fact]
    public void PredictRefusesAnImageWhosePipelineWouldExceedTheLimitNamingIt()
    {
        // Before: a 944 KB PNG of 18000x18000 (972 MB decoded, under the 1 GiB decode cap) took predict to 5.1 GB
        // and failed without naming the image. Its header alone now refuses it: decode plus the segmenter's pipeline.
        var model = Conv("m.onnx", metadata: Props((Keys.ClassNames, """["a","b","c","d"]"""), (Keys.Palette, "[[0,0,0],[1,1,1],[2,2,2],[3,3,3]]")));
        var input = Directory.CreateDirectory(dir.File("in")).FullName;
        var bomb = Path.Combine(input, "bomb.png");
        File.WriteAllBytes(bomb, [137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, .. "IHDR"u8, 0, 0, 0x46, 0x50, 0, 0, 0x46, 0x50, 8, 2, 0, 0, 0, 0, 0, 0, 0]);
        var e = Assert.Throws<Seg.Data.BadSampleException>(() => Seg.Train.Prediction.Predictor.RunOnnx(model, input, dir.File("out")));
        Assert.Equal(bomb, e.File);
        Assert.Contains("18000x18000 pixels", e.Message);
        Assert.Contains("35 bytes per pixel", e.Message); // 3 decoded + 12 input + 16 logits + 4 labels
    }

    [Fact]
    public void AnImageTheSegmenterCannotReadIsNamed()
    {
        using var segmenter = OnnxSegmenter.Load(Conv("m.onnx"));
        Assert.Throws<FileNotFoundException>(() => segmenter.Predict(dir.File("absent.png")));
        var junk = dir.File("junk.png");
        File.WriteAllBytes(junk, [137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, .. "IHDR"u8, 0, 0, 0, 4, 0, 0, 0, 4, 8, 2, 0, 0, 0, 1, 2, 3, 4]);
        var e = Assert.Throws<InvalidDataException>(() => segmenter.Predict(junk));
        Assert.Contains(junk, e.Message);
        Assert.Contains("OpenCV cannot decode the image", e.Message);
    }
}
