using Seg.Models;
using Seg.Models.Backbones;
using static TorchSharp.torch;

namespace Seg.Tests.Models;

/// <summary>
/// The <c>&lt;decoder&gt;_&lt;encoder&gt;</c> models: every pair is listed, gives logits at the input resolution for an
/// input size that is no multiple of 32, and holds the torchvision encoder's state_dict names and shapes under its
/// prefix (so torchvision's ImageNet files load with <see cref="StateDict.LoadBackbone"/>). The default suite runs
/// a representative subset (each decoder, each encoder family); Heavy runs every pair.
/// </summary>
public class EncoderDecoderTests
{
    public EncoderDecoderTests() => Seg.Core.SegRuntime.Initialize();

    static readonly string[] Decoders = ["unet", "fpn", "deeplabv3plus"];

    public static TheoryData<string> AllPairs()
    {
        var data = new TheoryData<string>();
        foreach (var d in Decoders) foreach (var e in EncoderCatalog.Names) data.Add($"{d}_{e}");
        return data;
    }

    [Fact]
    public void NamesListEveryPair()
    {
        Assert.Equal(15, EncoderCatalog.Names.Count);
        foreach (var d in Decoders)
            foreach (var e in EncoderCatalog.Names)
                Assert.Contains($"{d}_{e}", ModelFactory.Names);
        Assert.Equal(ModelFactory.Names.Count, ModelFactory.Names.Distinct().Count());
    }

    [Theory]
    [InlineData("unet_resnet18")]
    [InlineData("unet_mobilenet_v3_small")]
    [InlineData("unet_convnext_tiny")]
    [InlineData("fpn_resnet34")]
    [InlineData("fpn_efficientnet_b0")]
    [InlineData("fpn_mobilenet_v3_large")]
    [InlineData("deeplabv3plus_mobilenet_v3_large")]
    [InlineData("deeplabv3plus_efficientnet_b0")]
    [InlineData("deeplabv3plus_convnext_tiny")]
    [InlineData("deeplabv3plus_resnext50_32x4d")]
    [InlineData("deeplabv3plus_resnet18")]
    public void PairOutputsLogitsAtInputResolutionAndHoldTheTorchvisionEncoder(string name) => Check(name);

    [Theory]
    [Trait("Category", "Heavy")]
    [MemberData(nameof(AllPairs))]
    public void EveryPairOutputsLogitsAtInputResolutionAndHoldsTheTorchvisionEncoder(string name) => Check(name);

    static void Check(string name)
    {
        var decoder = Decoders.First(d => name.StartsWith(d + "_", StringComparison.Ordinal));
        var encoder = name[(decoder.Length + 1)..];
        using var model = ModelFactory.Create(name, 3, new ModelOptions { AuxHead = decoder == "deeplabv3plus" });
        var prefix = ((ISegmentationModel)model).BackbonePrefix!;

        // torchvision's classifier keys, less its classifier, under the prefix: the independent oracle.
        var torchvisionKeys = ModelFixtures.TorchvisionKeys().Concat(ZooKeys()).First(kv => kv.Key == encoder).Value
            .Where(k => !k.Key.StartsWith("fc.", StringComparison.Ordinal) && !k.Key.StartsWith("classifier.", StringComparison.Ordinal))
            .ToDictionary(k => prefix + k.Key, k => k.Shape);
        var ours = model.state_dict().Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal)).ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        Assert.Equal(torchvisionKeys.Keys.Order(), ours.Keys.Order());
        foreach (var (key, shape) in torchvisionKeys) Assert.True(shape.SequenceEqual(ours[key]), key);

        model.eval();
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var (y, aux) = ((ISegmentationModel)model).ForwardWithAux(randn(1, 3, 45, 61));
        Assert.Equal([1L, 3, 45, 61], y.shape);
        Assert.True(y.isfinite().all().item<bool>());
        if (aux is not null) Assert.Equal([1L, 3, 45, 61], aux.shape);
    }

    static Dictionary<string, List<(string Key, long[] Shape)>> ZooKeys() => ZooTorchvisionTests.ReadKeys();

    [Fact]
    public void ExistingModelsKeepTheirStateDictNames()
    {
        var resnet34 = ModelFixtures.TorchvisionKeys()["resnet34"].Where(k => !k.Key.StartsWith("fc.", StringComparison.Ordinal)).Select(k => "encoder." + k.Key);
        using var unet = ModelFactory.Create("unet_resnet34", 2);
        var decoderKeys = Enumerable.Range(0, 5).SelectMany(i => new[] { 0, 3 }.Select(c => $"decoder.{i}.{c}.weight")
            .Concat(new[] { 1, 4 }.SelectMany(c => new[] { "weight", "bias", "running_mean", "running_var", "num_batches_tracked" }.Select(p => $"decoder.{i}.{c}.{p}"))));
        Assert.Equal(resnet34.Concat(decoderKeys).Append("classifier.weight").Append("classifier.bias").Order(), unet.state_dict().Keys.Order());

        using var deeplab = ModelFactory.Create("deeplabv3plus_resnet50", 2);
        var backbone = ModelFixtures.TorchvisionKeys()["resnet50"].Where(k => !k.Key.StartsWith("fc.", StringComparison.Ordinal)).Select(k => "backbone." + k.Key);
        Assert.Equal(backbone.Order(), deeplab.state_dict().Keys.Where(k => k.StartsWith("backbone.", StringComparison.Ordinal)).Order());
        Assert.Contains("classifier.project.0.weight", deeplab.state_dict().Keys);
        Assert.Contains("classifier.aspp.convs.4.1.weight", deeplab.state_dict().Keys);
        Assert.Contains("classifier.classifier.6.bias", deeplab.state_dict().Keys);
    }

    [Fact]
    public void MobileNetRefusesAnOutputStrideItCannotGive()
    {
        var e = Assert.Throws<ArgumentException>(() => ModelFactory.Create("deeplabv3plus_mobilenet_v3_small", 2, new ModelOptions { OutputStride = 8 }));
        Assert.Contains("16", e.Message);
    }
}
