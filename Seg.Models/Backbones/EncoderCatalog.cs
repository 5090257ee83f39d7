using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Seg.Models.Backbones;

/// <summary>
/// The backbones that serve as encoders of the encoder–decoder models (<c>unet_*</c>, <c>fpn_*</c>,
/// <c>deeplabv3plus_*</c>): torchvision's classifiers without their classifier, so that torchvision's ImageNet
/// state_dicts load into them (under the model's <see cref="ISegmentationModel.BackbonePrefix"/>; the file's
/// classifier keys are left over).
/// </summary>
public static class EncoderCatalog
{
    static readonly string[] Others =
    [
        "mobilenet_v3_large", "mobilenet_v3_small",
        "efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3", "efficientnet_b4",
        "convnext_tiny", "convnext_small",
    ];

    /// <summary>Every encoder name (torchvision's model names).</summary>
    public static IReadOnlyList<string> Names { get; } = [.. ResNetCatalog.Names, .. Others];

    /// <summary>
    /// An encoder whose deepest stage has output stride <paramref name="outputStride"/>: 32 (no dilation), 16 or 8
    /// (the last one or two stride-2 steps traded for dilation, as DeepLab does). MobileNetV3 dilates only to 16
    /// (torchvision's segmentation backbone); ConvNeXt cannot dilate (its down-sampling is a 2×2 stride-2
    /// convolution) and always runs at 32.
    /// </summary>
    /// <exception cref="ArgumentException">Unknown name, or an output stride the encoder cannot give.</exception>
    public static Module<Tensor, Tensor> Create(string name, int outputStride = 32, long inChannels = 3)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (outputStride is not (8 or 16 or 32))
            throw new ArgumentException($"Output stride must be 8, 16 or 32, got {outputStride}.", nameof(outputStride));
        if (ResNetCatalog.Names.Contains(name, StringComparer.OrdinalIgnoreCase))
            return ResNetCatalog.Backbone(name, [false, outputStride == 8, outputStride <= 16], inChannels);
        switch (name.ToLowerInvariant())
        {
            case "mobilenet_v3_large" or "mobilenet_v3_small":
                if (outputStride == 8)
                    throw new ArgumentException($"{name}: output stride 8 is not available (torchvision dilates MobileNetV3's last stage only); use 16.", nameof(outputStride));
                return new MobileNetV3(name.EndsWith("large", StringComparison.OrdinalIgnoreCase), 0, outputStride == 16, inChannels);
            case var e when e.StartsWith("efficientnet_b", StringComparison.Ordinal) && Others.Contains(e):
                return new EfficientNet(e[^1] - '0', 0, outputStride == 32 ? 0 : outputStride * 2, inChannels);
            case "convnext_tiny" or "convnext_small":
                return new ConvNeXt(name.EndsWith("small", StringComparison.OrdinalIgnoreCase), 0, inChannels);
            default:
                throw new ArgumentException($"Unknown encoder '{name}'. Valid encoders: {string.Join(", ", Names)}.", nameof(name));
        }
    }

    /// <summary>The output stride an encoder really gives when asked for <paramref name="outputStride"/> (ConvNeXt: 32).</summary>
    public static int EffectiveOutputStride(string name, int outputStride) =>
        name.StartsWith("convnext", StringComparison.OrdinalIgnoreCase) ? 32 : outputStride;
}
