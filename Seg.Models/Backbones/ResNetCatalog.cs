namespace Seg.Models.Backbones;

/// <summary>The four torchvision ResNet depths and their block layouts.</summary>
public static class ResNetCatalog
{
    /// <summary>(bottleneck?, blocks per layer) for depth 18, 34, 50 or 101.</summary>
    public static (bool Bottleneck, int[] Blocks) Layout(int depth) => depth switch
    {
        18 => (false, [2, 2, 2, 2]),
        34 => (false, [3, 4, 6, 3]),
        50 => (true, [3, 4, 6, 3]),
        101 => (true, [3, 4, 23, 3]),
        _ => throw new ArgumentException($"ResNet depth must be 18, 34, 50 or 101, got {depth}.", nameof(depth)),
    };

    /// <summary>An ImageNet classifier (with <c>fc</c>).</summary>
    public static ResNet Classifier(int depth, int numClasses, long inChannels = 3)
    {
        var (bottleneck, blocks) = Layout(depth);
        return new ResNet(bottleneck, blocks, numClasses, null, inChannels);
    }

    /// <summary>A backbone (no <c>fc</c>) with the given layers' strides replaced by dilation.</summary>
    public static ResNet Backbone(int depth, bool[] replaceStrideWithDilation, long inChannels = 3)
    {
        var (bottleneck, blocks) = Layout(depth);
        return new ResNet(bottleneck, blocks, 0, replaceStrideWithDilation, inChannels);
    }
}
