namespace Seg.Models.Backbones;

/// <summary>torchvision's ResNet and ResNeXt variants and their layouts.</summary>
public static class ResNetCatalog
{
    /// <summary>Block type, blocks per layer, and the grouped 3×3 of the bottlenecks.</summary>
    public sealed record Spec(bool Bottleneck, int[] Blocks, long Groups = 1, long WidthPerGroup = 64);

    static readonly Dictionary<string, Spec> Specs = new(StringComparer.OrdinalIgnoreCase)
    {
        ["resnet18"] = new(false, [2, 2, 2, 2]),
        ["resnet34"] = new(false, [3, 4, 6, 3]),
        ["resnet50"] = new(true, [3, 4, 6, 3]),
        ["resnet101"] = new(true, [3, 4, 23, 3]),
        ["resnext50_32x4d"] = new(true, [3, 4, 6, 3], 32, 4),
        ["resnext101_32x8d"] = new(true, [3, 4, 23, 3], 32, 8),
    };

    /// <summary>The names, torchvision's.</summary>
    public static IReadOnlyCollection<string> Names => Specs.Keys;

    /// <summary>The layout of <paramref name="name"/>.</summary>
    /// <exception cref="ArgumentException">Not a ResNet/ResNeXt name.</exception>
    public static Spec Layout(string name) => Specs.TryGetValue(name, out var spec) ? spec
        : throw new ArgumentException($"Unknown ResNet '{name}'; known: {string.Join(", ", Specs.Keys)}.", nameof(name));

    /// <summary>An ImageNet classifier (with <c>fc</c>).</summary>
    public static ResNet Classifier(string name, int numClasses, long inChannels = 3)
    {
        var s = Layout(name);
        return new ResNet(s.Bottleneck, s.Blocks, numClasses, null, inChannels, s.Groups, s.WidthPerGroup);
    }

    /// <summary>A backbone (no <c>fc</c>) with the given layers' strides replaced by dilation.</summary>
    public static ResNet Backbone(string name, bool[] replaceStrideWithDilation, long inChannels = 3)
    {
        var s = Layout(name);
        return new ResNet(s.Bottleneck, s.Blocks, 0, replaceStrideWithDilation, inChannels, s.Groups, s.WidthPerGroup);
    }
}
