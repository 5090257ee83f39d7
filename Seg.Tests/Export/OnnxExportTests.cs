using Microsoft.ML.OnnxRuntime;
using Seg.Models;
using Seg.Models.Export;
using Seg.Tests.Models;
using Seg.Train.Cli;
using Seg.Train.Export;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Seg.Tests.Export;

/// <summary>Export options (static size, opsets, metadata) and export errors.</summary>
public class OnnxExportTests
{
    public OnnxExportTests() => Seg.Core.SegRuntime.Initialize();

    static nn.Module<Tensor, Tensor> SmallUNet(Func<long, int, nn.Module<Tensor, Tensor>>? head = null)
    {
        var model = ModelFactory.Create("unet", 3, new ModelOptions { UnetDepth = 2, UnetBaseWidth = 4, HeadFactory = head });
        model.eval();
        return model;
    }

    [Fact]
    public void StaticSizeFixesHeightAndWidthButNotTheBatch()
    {
        using var model = SmallUNet();
        using var dir = new OnnxTestKit.TempDir();
        OnnxExporter.Export(model, dir.File("m.onnx"), new OnnxExportOptions { StaticSize = (37, 29) });
        using var session = new InferenceSession(dir.File("m.onnx"));
        Assert.Equal([-1, 3, 37, 29], session.InputMetadata["images"].Dimensions);
        Assert.Equal([-1, 3, 37, 29], session.OutputMetadata["logits"].Dimensions);
        var (_, shape) = OnnxTestKit.Run(session, randn(2, 3, 37, 29));
        Assert.Equal([2L, 3, 37, 29], shape);
        Assert.ThrowsAny<OnnxRuntimeException>(() => OnnxTestKit.Run(session, randn(1, 3, 40, 29)));
    }

    [Theory]
    [InlineData(13)]
    [InlineData(17)]
    [InlineData(18)] // reductions take their axes as an input from 18 on
    [InlineData(21)]
    public void EveryOpsetInTheRangeRunsAndAgrees(int opset)
    {
        // The cosine head uses the reductions whose form changed at opset 18.
        using var model = SmallUNet((c, k) => new Seg.Models.Heads.CosineHead(c, k, 8, 10));
        OnnxTestKit.RandomizeBatchNorm(model);
        using var dir = new OnnxTestKit.TempDir();
        OnnxExporter.Export(model, dir.File("m.onnx"), new OnnxExportOptions { Opset = opset });
        using var x = randn(1, 3, 33, 21);
        using var y64 = ModelAsFloat64(model, x);
        var (values, _) = OnnxTestKit.Run(dir.File("m.onnx"), x);
        var (diff, max) = OnnxTestKit.Compare(values, ModelFixtures.Values(y64));
        Assert.True(diff <= 1e-4 * max, $"opset {opset}: max|Δ| {diff}, max|ref| {max}");
    }

    static Tensor ModelAsFloat64(nn.Module<Tensor, Tensor> model, Tensor x)
    {
        TorchSharp.ModuleExtensionMethods.to(model, ScalarType.Float64);
        try
        {
            using var _ = no_grad();
            return model.forward(x.to(ScalarType.Float64));
        }
        finally { TorchSharp.ModuleExtensionMethods.to(model, ScalarType.Float32); }
    }

    [Theory]
    [InlineData(12)]
    [InlineData(22)]
    public void OpsetsOutsideTheRangeAreRefused(int opset)
    {
        using var model = SmallUNet();
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => OnnxExporter.Export(model, "unused.onnx", new OnnxExportOptions { Opset = opset }));
        Assert.Contains($"{OnnxExporter.MinOpset}–{OnnxExporter.MaxOpset}", e.Message);
    }

    [Fact]
    public void MetadataReachesTheFile()
    {
        using var model = SmallUNet();
        using var dir = new OnnxTestKit.TempDir();
        var metadata = new Dictionary<string, string> { ["class_names"] = "[\"a\",\"b\",\"c\"]", ["note"] = "ünïcödé" };
        OnnxExporter.Export(model, dir.File("m.onnx"), new OnnxExportOptions { Metadata = metadata });
        using var session = new InferenceSession(dir.File("m.onnx"));
        var props = session.ModelMetadata.CustomMetadataMap;
        Assert.Equal(metadata, props.Where(p => p.Key != OnnxExporter.GraphSha256Key).ToDictionary()); // the hash: OnnxHostileFileTests
        Assert.Matches("^[0-9a-f]{64}$", props[OnnxExporter.GraphSha256Key]);
        Assert.Equal("Seg", session.ModelMetadata.ProducerName);
    }

    [Fact]
    public void AModelInTrainingModeIsRefused()
    {
        using var model = SmallUNet();
        model.train();
        var e = Assert.Throws<InvalidOperationException>(() => OnnxExporter.Export(model, "unused.onnx", new OnnxExportOptions()));
        Assert.Contains("training mode", e.Message);
        Assert.Contains("eval()", e.Message);
    }

    sealed class Swish : Module<Tensor, Tensor>
    {
        public Swish() : base(nameof(Swish)) { }
        public override Tensor forward(Tensor x) => x * x.sigmoid();
    }

    [Fact]
    public void AnUnknownModuleIsAnErrorNamingItsPathAndType()
    {
        using var model = SmallUNet((c, k) => Sequential(Conv2d(c, k, 1), new Swish()));
        using var dir = new OnnxTestKit.TempDir();
        var e = Assert.Throws<NotSupportedException>(() => OnnxExporter.Export(model, dir.File("m.onnx"), new OnnxExportOptions()));
        Assert.Contains("'classifier.1'", e.Message);
        Assert.Contains(nameof(Swish), e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.False(File.Exists(dir.File("m.onnx")));
    }

    [Fact]
    public void AnUnsupportedSettingOfAKnownLayerIsAnError()
    {
        using var model = SmallUNet((c, k) => Conv2d(c, k, 3, padding: 1, padding_mode: TorchSharp.PaddingModes.Reflect));
        var e = Assert.Throws<NotSupportedException>(() => OnnxExporter.Export(model, "unused.onnx", new OnnxExportOptions()));
        Assert.Contains("'classifier'", e.Message);
        Assert.Contains("Reflect", e.Message);
    }

    // A composite whose export forgets a child that holds weights.
    sealed class Forgetful : Module<Tensor, Tensor>, IOnnxExportable
    {
        readonly Conv2d used = Conv2d(3, 4, 1), forgotten = Conv2d(4, 4, 1);

        public Forgetful() : base(nameof(Forgetful)) => RegisterComponents();
        public override Tensor forward(Tensor x) => forgotten.forward(used.forward(x));
        public string ExportOnnx(OnnxGraphBuilder graph, string path, string input) => graph.Module(used, OnnxGraphBuilder.Join(path, "used"), input);
    }

    [Fact]
    public void AWeightHoldingModuleTheExportDidNotReachIsAnError()
    {
        using var model = new Forgetful();
        model.eval();
        var e = Assert.Throws<NotSupportedException>(() => OnnxExporter.Export(model, "unused.onnx", new OnnxExportOptions()));
        Assert.Contains("'forgotten'", e.Message);
        Assert.Contains("never reached", e.Message);
    }

    [Fact]
    public void AnOutputPathThatCannotBeWrittenIsOneLineNamingIt()
    {
        using var model = SmallUNet();
        using var dir = new OnnxTestKit.TempDir();
        File.WriteAllText(dir.File("file"), "a file, not a folder");
        var target = Path.Combine(dir.File("file"), "model.onnx"); // root may write anywhere, but not under a file
        var e = Assert.Throws<IOException>(() => OnnxExporter.Export(model, target, new OnnxExportOptions()));
        Assert.Contains(target, e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal(1, SegCli.Guard(() => throw e));
    }

    [Fact]
    public void ExportOfAFileThatIsNotACheckpointNamesTheFile()
    {
        using var dir = new OnnxTestKit.TempDir();
        File.WriteAllText(dir.File("weights.ckpt"), "not a checkpoint");
        var e = Assert.Throws<InvalidDataException>(() => ExportCommand.Run(dir.File("weights.ckpt"), dir.File("m.onnx")));
        Assert.Contains(dir.File("weights.ckpt"), e.Message);
        Assert.Equal(1, SegCli.Guard(() => { ExportCommand.Run(dir.File("weights.ckpt"), dir.File("m.onnx")); return 0; }));
        Assert.False(File.Exists(dir.File("m.onnx")));
    }

    [Fact]
    public void ExportCommandLineHasTheContractOptions()
    {
        var root = SegCli.Build(CancellationToken.None);
        var result = root.Parse(["export", "--checkpoint", "a.ckpt", "--output", "m.onnx", "--opset", "13", "--argmax", "--static", "97", "75"]);
        Assert.Empty(result.Errors);
        Assert.Equal(13, result.GetValue<int>("--opset"));
        Assert.True(result.GetValue<bool>("--argmax"));
        Assert.Equal([97, 75], result.GetValue<int[]>("--static")!);
        var defaults = root.Parse(["export", "--checkpoint", "a.ckpt", "--output", "m.onnx"]);
        Assert.Empty(defaults.Errors);
        Assert.Equal(17, defaults.GetValue<int>("--opset"));
        Assert.NotEmpty(root.Parse(["export", "--checkpoint", "a.ckpt", "--output", "m.onnx", "--static", "97"]).Errors);
    }

    [Fact]
    public void PredictTakesExactlyOneOfCheckpointAndModel()
    {
        var root = SegCli.Build(CancellationToken.None);
        Assert.Empty(root.Parse(["predict", "--model", "m.onnx", "--input", "in", "--output", "out"]).Errors);
        Assert.Empty(root.Parse(["predict", "--checkpoint", "a.ckpt", "--input", "in", "--output", "out"]).Errors);
        Assert.NotEmpty(root.Parse(["predict", "--input", "in", "--output", "out"]).Errors);
        Assert.NotEmpty(root.Parse(["predict", "--model", "m.onnx", "--checkpoint", "a.ckpt", "--input", "in", "--output", "out"]).Errors);
    }
}
