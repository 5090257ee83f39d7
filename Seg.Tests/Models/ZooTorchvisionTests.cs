using System.Diagnostics;
using System.Text.Json;
using Seg.Models;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Seg.Tests.Models;

/// <summary>
/// torchvision's other classifiers and segmentation models, against torchvision 0.14 itself
/// (Fixtures/zoo/make_zoo_fixtures.py): state_dict names, shapes and parameter counts for every model; eval outputs
/// within 1e-4 of the output's largest magnitude for the same weights and input (committed pattern weights in float64;
/// torch.save'd random weights in float32). The default suite runs the outputs
/// of the smaller models; the Heavy category runs the rest, and a check that loads torch.save'd random weights
/// strictly (it runs the script with /usr/bin/python3).
/// </summary>
public class ZooTorchvisionTests(ITestOutputHelper output)
{
    static readonly string[] Segmentation = ["fcn_resnet50", "fcn_resnet101", "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"];

    static string Fixture(string name) => Path.Combine(ModelFixtures.Path(".."), "zoo", name);

    public static TheoryData<string> AllVariants()
    {
        var data = new TheoryData<string>();
        foreach (var key in Counts().Keys) data.Add(key);
        return data;
    }

    static Dictionary<string, long> Counts()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "zoo", "zoo_param_counts.json")));
        return doc.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt64());
    }

    /// <summary>torchvision's state_dict entries per model (zoo_keys.txt.gz).</summary>
    internal static Dictionary<string, List<(string Key, long[] Shape)>> ReadKeys() => ModelFixtures.ReadKeys(Fixture("zoo_keys.txt.gz"));

    [Theory]
    [MemberData(nameof(AllVariants))]
    public void StateDictNamesShapesAndParameterCountEqualTorchvision(string variant)
    {
        bool aux = variant.EndsWith("_aux", StringComparison.Ordinal);
        string name = aux ? variant[..^4] : variant;
        using var model = ModelFactory.Create(name, Segmentation.Contains(name) ? 21 : 1000, new ModelOptions { AuxHead = aux });
        Assert.Equal(Counts()[variant], model.parameters().Sum(p => p.numel()));
        var expected = ReadKeys()[variant];
        var ours = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        Assert.Equal(expected.Select(e => e.Key).Order(), ours.Keys.Order());
        foreach (var (key, shape) in expected)
            Assert.True(shape.SequenceEqual(ours[key]), $"{key}: torchvision [{string.Join(",", shape)}], ours [{string.Join(",", ours[key])}]");
    }

    [Theory]
    [InlineData("mobilenet_v3_small")]
    [InlineData("mobilenet_v3_large")]
    [InlineData("efficientnet_b0")]
    [InlineData("convnext_tiny")]
    [InlineData("resnext50_32x4d")]
    [InlineData("fcn_resnet50")]
    [InlineData("deeplabv3_mobilenet_v3_large")]
    [InlineData("lraspp_mobilenet_v3_large")]
    public void EvalOutputEqualsTorchvision(string name) => ComparePattern(name);

    [Theory]
    [Trait("Category", "Heavy")]
    [InlineData("efficientnet_b1")]
    [InlineData("efficientnet_b2")]
    [InlineData("efficientnet_b3")]
    [InlineData("efficientnet_b4")]
    [InlineData("convnext_small")]
    [InlineData("resnext101_32x8d")]
    [InlineData("fcn_resnet101")]
    public void EvalOutputEqualsTorchvisionForTheLargerModels(string name) => ComparePattern(name);

    /// <summary>torch.save'd random weights, loaded strictly, give torchvision's output: runs make_zoo_fixtures.py --random.</summary>
    [Theory]
    [Trait("Category", "Heavy")]
    [InlineData("mobilenet_v3_large")]
    [InlineData("mobilenet_v3_small")]
    [InlineData("efficientnet_b0")]
    [InlineData("efficientnet_b4")]
    [InlineData("convnext_tiny")]
    [InlineData("convnext_small")]
    [InlineData("resnext50_32x4d")]
    [InlineData("resnext101_32x8d")]
    [InlineData("fcn_resnet50")]
    [InlineData("fcn_resnet101")]
    [InlineData("deeplabv3_mobilenet_v3_large")]
    [InlineData("lraspp_mobilenet_v3_large")]
    public void TorchSavedRandomWeightsLoadStrictlyAndGiveTorchvisionsOutput(string name)
    {
        var dir = Directory.CreateTempSubdirectory("seg-zoo-").FullName;
        try
        {
            var python = new ProcessStartInfo("/usr/bin/python3", [Fixture("make_zoo_fixtures.py"), "--random", dir, name]) { RedirectStandardError = true };
            using (var p = Process.Start(python)!)
            {
                var err = p.StandardError.ReadToEnd();
                Assert.True(p.WaitForExit(600_000) && p.ExitCode == 0, $"python failed: {err}");
            }
            using var model = Create(name);
            var report = StateDict.LoadInto(model, Path.Combine(dir, $"{name}.pth"));
            Assert.True(report.IsExact, report.ToString());
            Compare(name, model, StateDict.Read(Path.Combine(dir, $"{name}_io.pth")));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    static nn.Module<Tensor, Tensor> Create(string name) => Segmentation.Contains(name)
        ? ModelFactory.Create(name, 4, new ModelOptions { AuxHead = name != "lraspp_mobilenet_v3_large" })
        : ModelFactory.Create(name, 1000);

    // Pattern weights, float64 on both sides (see make_zoo_fixtures.py: they are too ill-conditioned for float32 in
    // the deeper models); the float32 path is the random-weights test's.
    void ComparePattern(string name)
    {
        using var model = Create(name);
        PatternWeights.Fill(model);
        model.to(ScalarType.Float64);
        Compare(name, model, StateDict.Read(Fixture(Path.Combine("io", $"{name}.pth"))));
    }

    void Compare(string name, nn.Module<Tensor, Tensor> model, IReadOnlyDictionary<string, Tensor> io)
    {
        model.eval();
        using var _ = no_grad();
        var (y, aux) = model is ISegmentationModel seg ? seg.ForwardWithAux(io["input"]) : (model.forward(io["input"]), null);
        Check($"{name} out", y, io["output"]);
        if (io.TryGetValue("aux", out var auxReference)) Check($"{name} aux", aux!, auxReference);
    }

    void Check(string what, Tensor y, Tensor reference) => ModelFixtures.AssertClose(output, what, y, reference);
}
