using static TorchSharp.torch;

namespace Seg.Models;

/// <summary>
/// What every segmentation model of <see cref="ModelFactory"/> offers beyond <c>forward</c>
/// ([B, C, H, W] images to [B, numClasses, H, W] logits at the input resolution).
/// </summary>
public interface ISegmentationModel
{
    /// <summary>Key prefix of the ImageNet backbone inside this model (<c>"backbone."</c>, <c>"encoder."</c>),
    /// or null when the model has no pretrained-able backbone (plain UNet). Used by <see cref="StateDict.LoadBackbone"/>.</summary>
    string? BackbonePrefix { get; }

    /// <summary>Whether an auxiliary head exists (<see cref="ModelOptions.AuxHead"/>).</summary>
    bool HasAuxHead { get; }

    /// <summary>Main logits and, when <see cref="HasAuxHead"/>, the auxiliary head's logits (both at input
    /// resolution); Aux is null otherwise.</summary>
    (Tensor Out, Tensor? Aux) ForwardWithAux(Tensor input);
}
