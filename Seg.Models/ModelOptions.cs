using static TorchSharp.torch;

namespace Seg.Models;

/// <summary>
/// Architecture switches for <see cref="ModelFactory.Create"/>. Plain init properties so that a YAML config maps
/// onto it one to one; every property has a default, and each model reads only the properties that concern it.
/// </summary>
public sealed record ModelOptions
{
    /// <summary>DeepLabV3/V3+: add torchvision's FCN auxiliary head on <c>layer3</c> (key prefix <c>aux_classifier.</c>).
    /// Its output comes from <see cref="ISegmentationModel.ForwardWithAux"/>; <c>forward</c> returns the main logits only.</summary>
    public bool AuxHead { get; init; }

    /// <summary>DeepLabV3+ only: 16 (dilated <c>layer4</c>, ASPP rates 6/12/18) or 8 (dilated <c>layer3</c> and
    /// <c>layer4</c>, rates 12/24/36). DeepLabV3 keeps torchvision's fixed output stride 8.</summary>
    public int OutputStride { get; init; } = 16;

    /// <summary>The values of <see cref="OutputStride"/> that DeepLabV3+ builds.</summary>
    public static IReadOnlyList<int> OutputStrides { get; } = [16, 8];

    /// <summary>UNet: number of 2× down-sampling steps (<see cref="MinUnetDepth"/> to <see cref="MaxUnetDepth"/>).</summary>
    public int UnetDepth { get; init; } = 4;

    /// <summary>The shallowest UNet built: one down-sampling step.</summary>
    public const int MinUnetDepth = 1;

    /// <summary>The deepest UNet built: six down-sampling steps (a 64-pixel input reaches 1×1 there).</summary>
    public const int MaxUnetDepth = 6;

    /// <summary>The widest UNet first stage (the default is 64): a width of a million ended in a raw allocation failure.</summary>
    public const int MaxUnetBaseWidth = 1024;

    /// <summary>UNet: channels of the first stage; stage <c>i</c> has <c>UnetBaseWidth·2^i</c>.</summary>
    public int UnetBaseWidth { get; init; } = 64;

    /// <summary>UNet: up-sample with bilinear interpolation (true) or a learned 2×2 transposed convolution (false).</summary>
    public bool UnetBilinear { get; init; } = true;

    /// <summary>Channels of the input image (3 for RGB). Other values change <c>conv1</c>'s shape, so ImageNet
    /// weights no longer load into it.</summary>
    public int InChannels { get; init; } = 3;

    /// <summary>
    /// When set, every segmentation model builds its final per-pixel classifier (the layer that maps
    /// <c>inChannels</c> features to <c>numClasses</c> logits, a 1×1 <c>Conv2d</c> by default) as
    /// <c>HeadFactory(inChannels, numClasses)</c>. The module must map [B, inChannels, h, w] to [B, numClasses, h, w].
    /// ResNet classifiers and the auxiliary head are not affected.
    /// </summary>
    public Func<long, int, nn.Module<Tensor, Tensor>>? HeadFactory { get; init; }

    /// <summary>
    /// The options no model builds, each as the property's name and the problem ("7 is out of range [1, 6]");
    /// empty when every option is in range. Each option is checked whatever the model, so that a caller that maps
    /// its own keys onto these options (the training config) can refuse a bad value before choosing a model,
    /// without restating the ranges. The models refuse the same values when built.
    /// </summary>
    public IEnumerable<(string Property, string Problem)> Problems()
    {
        if (!OutputStrides.Contains(OutputStride))
            yield return (nameof(OutputStride), $"{OutputStride} must be {string.Join(" or ", OutputStrides.Order())}");
        if (UnetDepth is < MinUnetDepth or > MaxUnetDepth)
            yield return (nameof(UnetDepth), $"{UnetDepth} is out of range [{MinUnetDepth}, {MaxUnetDepth}]");
        if (UnetBaseWidth < 1)
            yield return (nameof(UnetBaseWidth), $"{UnetBaseWidth} must be at least 1");
        else if (UnetBaseWidth > MaxUnetBaseWidth)
            yield return (nameof(UnetBaseWidth), $"{UnetBaseWidth} is above the maximum {MaxUnetBaseWidth}");
        if (InChannels < 1)
            yield return (nameof(InChannels), $"{InChannels} must be at least 1");
    }
}
