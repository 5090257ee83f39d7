using Seg.Models.Backbones;
using Seg.Models.Segmentation;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Seg.Models;

/// <summary>
/// Builds models by name. ResNets map [B, C, H, W] images to [B, numClasses] logits; segmentation models
/// (which also implement <see cref="ISegmentationModel"/>) map them to [B, numClasses, H, W] logits at the
/// input resolution. Parameter and buffer names follow torchvision wherever torchvision has the model.
/// </summary>
public static class ModelFactory
{
    static readonly (string Name, Func<int, ModelOptions, Module<Tensor, Tensor>> Build)[] Catalog =
    [
        ("resnet18", (n, o) => ResNetCatalog.Classifier("resnet18", n, o.InChannels)),
        ("resnet34", (n, o) => ResNetCatalog.Classifier("resnet34", n, o.InChannels)),
        ("resnet50", (n, o) => ResNetCatalog.Classifier("resnet50", n, o.InChannels)),
        ("resnet101", (n, o) => ResNetCatalog.Classifier("resnet101", n, o.InChannels)),
        ("resnext50_32x4d", (n, o) => ResNetCatalog.Classifier("resnext50_32x4d", n, o.InChannels)),
        ("resnext101_32x8d", (n, o) => ResNetCatalog.Classifier("resnext101_32x8d", n, o.InChannels)),
        ("mobilenet_v3_large", (n, o) => new MobileNetV3(large: true, n, inChannels: o.InChannels)),
        ("mobilenet_v3_small", (n, o) => new MobileNetV3(large: false, n, inChannels: o.InChannels)),
        ("efficientnet_b0", (n, o) => new EfficientNet(0, n, inChannels: o.InChannels)),
        ("efficientnet_b1", (n, o) => new EfficientNet(1, n, inChannels: o.InChannels)),
        ("efficientnet_b2", (n, o) => new EfficientNet(2, n, inChannels: o.InChannels)),
        ("efficientnet_b3", (n, o) => new EfficientNet(3, n, inChannels: o.InChannels)),
        ("efficientnet_b4", (n, o) => new EfficientNet(4, n, inChannels: o.InChannels)),
        ("convnext_tiny", (n, o) => new ConvNeXt(small: false, n, o.InChannels)),
        ("convnext_small", (n, o) => new ConvNeXt(small: true, n, o.InChannels)),
        ("fcn_resnet50", (n, o) => new DeepLabV3("resnet50", n, o, fcn: true)),
        ("fcn_resnet101", (n, o) => new DeepLabV3("resnet101", n, o, fcn: true)),
        ("deeplabv3_resnet50", (n, o) => new DeepLabV3("resnet50", n, o)),
        ("deeplabv3_resnet101", (n, o) => new DeepLabV3("resnet101", n, o)),
        ("deeplabv3_mobilenet_v3_large", (n, o) => new DeepLabV3("mobilenet_v3_large", n, o)),
        ("lraspp_mobilenet_v3_large", (n, o) => new LRASPP(n, o)),
        ("unet", (n, o) => new UNet(n, o)),
    ];

    // The encoder–decoder pairs <decoder>_<encoder>, after the models above.
    static readonly (string Name, Func<int, ModelOptions, Module<Tensor, Tensor>> Build)[] Pairs =
    [
        .. EncoderCatalog.Names.Select(e => ($"unet_{e}", (Func<int, ModelOptions, Module<Tensor, Tensor>>)((n, o) => new EncoderUNet(e, n, o)))),
        .. EncoderCatalog.Names.Select(e => ($"fpn_{e}", (Func<int, ModelOptions, Module<Tensor, Tensor>>)((n, o) => new Fpn(e, n, o)))),
        .. EncoderCatalog.Names.Select(e => ($"deeplabv3plus_{e}", (Func<int, ModelOptions, Module<Tensor, Tensor>>)((n, o) => new DeepLabV3Plus(e, n, o)))),
    ];

    /// <summary>Every name <see cref="Create"/> accepts.</summary>
    public static IReadOnlyList<string> Names { get; } = Catalog.Concat(Pairs).Select(c => c.Name).ToArray();

    /// <summary>A freshly initialised model (torchvision's initialisation for the ResNet parts).</summary>
    /// <param name="name">One of <see cref="Names"/> (case-insensitive).</param>
    /// <param name="numClasses">Output classes (≥ 1).</param>
    /// <param name="options">Architecture switches; null means defaults.</param>
    /// <exception cref="ArgumentException">Unknown name (the message lists the valid ones) or bad numClasses/options.</exception>
    public static Module<Tensor, Tensor> Create(string name, int numClasses, ModelOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (numClasses < 1) throw new ArgumentException($"numClasses must be at least 1, got {numClasses}.", nameof(numClasses));
        options ??= new ModelOptions();
        if (options.InChannels < 1) throw new ArgumentException($"InChannels must be at least 1, got {options.InChannels}.", nameof(options));
        foreach (var (known, build) in Catalog.Concat(Pairs))
            if (string.Equals(known, name, StringComparison.OrdinalIgnoreCase)) return build(numClasses, options);
        throw new ArgumentException($"Unknown model '{name}'. Valid names: {string.Join(", ", Names)}.", nameof(name));
    }
}
