using Seg.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Tests.Models;

public class ModelFactoryTests
{
    public ModelFactoryTests() => Seg.Core.SegRuntime.Initialize();

    [Fact]
    public void NamesCoverTheIssue()
    {
        string[] required = ["resnet18", "resnet34", "resnet50", "resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101",
            "deeplabv3plus_resnet50", "deeplabv3plus_resnet101", "unet", "unet_resnet34",
            "mobilenet_v3_large", "mobilenet_v3_small", "efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3",
            "efficientnet_b4", "convnext_tiny", "convnext_small", "resnext50_32x4d", "resnext101_32x8d",
            "fcn_resnet50", "fcn_resnet101", "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"];
        string[] encoders = ["resnet18", "resnet34", "resnet50", "resnet101", "resnext50_32x4d", "resnext101_32x8d",
            "mobilenet_v3_large", "mobilenet_v3_small", "efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3",
            "efficientnet_b4", "convnext_tiny", "convnext_small"];
        var pairs = new[] { "unet", "fpn", "deeplabv3plus" }.SelectMany(d => encoders.Select(e => $"{d}_{e}"));
        Assert.Equal(required.Union(pairs).Order(), ModelFactory.Names.Order());
    }

    [Fact]
    public void UnknownNameListsTheValidOnes()
    {
        var e = Assert.Throws<ArgumentException>(() => ModelFactory.Create("resnet51", 10));
        Assert.Contains("resnet51", e.Message);
        foreach (var name in ModelFactory.Names) Assert.Contains(name, e.Message);
    }

    [Fact]
    public void BadArgumentsAreRefused()
    {
        Assert.Throws<ArgumentException>(() => ModelFactory.Create("unet", 0));
        var e = Assert.Throws<ArgumentException>(() => ModelFactory.Create("deeplabv3plus_resnet50", 3, new ModelOptions { OutputStride = 12 }));
        Assert.Contains("12", e.Message);
        Assert.Throws<ArgumentException>(() => ModelFactory.Create("unet", 3, new ModelOptions { UnetDepth = 0 }));
    }

    // Counts printed by torchvision 0.14 (make_fixtures.py, torchvision_param_counts.json): an independent oracle.
    [Theory]
    [InlineData("resnet18", 1000, false, 11_689_512)]
    [InlineData("resnet34", 1000, false, 21_797_672)]
    [InlineData("resnet50", 1000, false, 25_557_032)]
    [InlineData("resnet101", 1000, false, 44_549_160)]
    [InlineData("deeplabv3_resnet50", 21, false, 39_638_869)]
    [InlineData("deeplabv3_resnet50", 21, true, 42_004_074)]
    [InlineData("deeplabv3_resnet101", 21, false, 58_630_997)]
    [InlineData("deeplabv3_resnet101", 21, true, 60_996_202)]
    public void ParameterCountsAndStateDictKeysEqualTorchvision(string name, int classes, bool aux, long expectedParameters)
    {
        using var model = ModelFactory.Create(name, classes, new ModelOptions { AuxHead = aux });
        Assert.Equal(expectedParameters, model.parameters().Sum(p => p.numel()));

        var expected = ModelFixtures.TorchvisionKeys()[aux ? name + "_aux" : name];
        var actual = model.state_dict().Select(kv => (kv.Key, kv.Value.shape)).ToList();
        // Same names (TorchSharp lists parameters before buffers, so the order differs) and same shapes.
        Assert.Equal(expected.Select(e => e.Key).Order(), actual.Select(a => a.Key).Order());
        var ours = actual.ToDictionary(a => a.Key, a => a.shape);
        foreach (var (key, shape) in expected)
            Assert.True(shape.SequenceEqual(ours[key]), $"{key}: torchvision [{string.Join(",", shape)}], ours [{string.Join(",", ours[key])}]");
    }

    [Theory]
    [InlineData("deeplabv3_resnet50")]
    [InlineData("deeplabv3_resnet101")]
    [InlineData("deeplabv3plus_resnet50")]
    [InlineData("deeplabv3plus_resnet101")]
    [InlineData("unet")]
    [InlineData("unet_resnet34")]
    public void SegmentationLogitsHaveTheInputResolution(string name)
    {
        var options = name == "unet" ? new ModelOptions { UnetBaseWidth = 8, UnetDepth = 3 } : new ModelOptions();
        using var model = ModelFactory.Create(name, 5, options);
        model.eval();
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var y = model.forward(randn(1, 3, 37, 50));
        Assert.Equal([1L, 5, 37, 50], y.shape);
        Assert.True(y.isfinite().all().item<bool>());
    }

    [Fact]
    public void ResNetClassifierGivesOneRowPerImage()
    {
        using var model = ModelFactory.Create("resnet18", 7);
        model.eval();
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        Assert.Equal([2L, 7], model.forward(randn(2, 3, 40, 40)).shape);
    }

    [Fact]
    public void DeepLabV3PlusOutputStrideChangesDilationNotParameters()
    {
        using var os16 = ModelFactory.Create("deeplabv3plus_resnet50", 4, new ModelOptions { OutputStride = 16 });
        using var os8 = ModelFactory.Create("deeplabv3plus_resnet50", 4, new ModelOptions { OutputStride = 8 });
        Assert.Equal(os16.state_dict().Keys, os8.state_dict().Keys);
        // Dilation shows on layer3's 3×3 convolutions: torchvision dilates all but the first block of a dilated layer.
        var dil16 = ((TorchSharp.Modules.Conv2d)os16.named_modules().Single(m => m.name == "backbone.layer3.1.conv2").module);
        var dil8 = ((TorchSharp.Modules.Conv2d)os8.named_modules().Single(m => m.name == "backbone.layer3.1.conv2").module);
        using var x = randn(1, 256, 9, 9);
        using var _ = no_grad();
        // Same weights, different dilation → different outputs; a 9×9 input with padding = dilation keeps size either way.
        dil8.weight!.copy_(dil16.weight!);
        Assert.False(dil16.forward(x).allclose(dil8.forward(x)));
    }
}
