using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses.LovaszLosses;

/// <summary>
/// Lovász hinge loss for binary segmentation (<see cref="Lovasz.Hinge"/>). Takes scores [B,H,W] or [B,1,H,W]
/// with labels [B,H,W], or [N] or [N,1] with [N]; labels in {0,1}.
/// </summary>
public sealed class LovaszHingeLoss : nn.Module<Tensor, Tensor, Tensor>
{
    /// <summary>The default of <c>perImage</c>: true (per image, as the reference implementation does).</summary>
    public const bool DefaultPerImage = true;

    /// <summary>Creates the loss.</summary>
    /// <param name="perImage">Average per image (the reference's default), else one ranking over the batch.</param>
    /// <param name="ignoreIndex">Label of pixels to leave out (default 255), or null for none.</param>
    /// <param name="name">Module name.</param>
    public LovaszHingeLoss(bool perImage = DefaultPerImage, long? ignoreIndex = 255, string name = "lovasz_hinge") : base(name)
    {
        PerImage = perImage;
        IgnoreIndex = ignoreIndex;
    }

    /// <summary>Per-image averaging.</summary>
    public bool PerImage { get; }
    /// <summary>Ignored label, or null.</summary>
    public long? IgnoreIndex { get; }

    /// <inheritdoc/>
    public override Tensor forward(Tensor logits, Tensor labels)
    {
        using var precision = LossInputs.FullPrecision(ref logits);
        using var scope = NewDisposeScope();
        var (x, y) = LossInputs.Binary(logits, labels);
        return Lovasz.Hinge(x, y, PerImage, IgnoreIndex).MoveToOuterDisposeScope();
    }
}
