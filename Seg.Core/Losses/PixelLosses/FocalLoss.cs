using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses.PixelLosses;

/// <summary>
/// Multi-class focal loss (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017): per pixel
/// −α·(1−p_y)^γ·log p_y with p = softmax(logits), averaged over non-ignored pixels (0 when there are none);
/// γ = 0 and α = 1 give cross-entropy. Takes logits [B,C,H,W] with labels [B,H,W], or [N,C] with [N].
/// </summary>
public sealed class FocalLoss : nn.Module<Tensor, Tensor, Tensor>
{
    /// <summary>Creates the loss.</summary>
    /// <param name="gamma">Focusing exponent γ ≥ 0.</param>
    /// <param name="alpha">Scale α &gt; 0.</param>
    /// <param name="ignoreIndex">Label of pixels to leave out (default 255), or null for none.</param>
    /// <param name="name">Module name.</param>
    public FocalLoss(double gamma = 2.0, double alpha = 1.0, long? ignoreIndex = 255, string name = "focal") : base(name)
    {
        if (!(gamma >= 0) || double.IsInfinity(gamma))
            throw new ArgumentOutOfRangeException(nameof(gamma), gamma, "gamma must be finite and non-negative.");
        if (!(alpha > 0) || double.IsInfinity(alpha))
            throw new ArgumentOutOfRangeException(nameof(alpha), alpha, "alpha must be positive and finite.");
        Gamma = gamma;
        Alpha = alpha;
        IgnoreIndex = ignoreIndex;
    }

    /// <summary>Focusing exponent γ.</summary>
    public double Gamma { get; }
    /// <summary>Scale α.</summary>
    public double Alpha { get; }
    /// <summary>Ignored label, or null.</summary>
    public long? IgnoreIndex { get; }

    /// <inheritdoc/>
    public override Tensor forward(Tensor logits, Tensor labels)
    {
        using var precision = LossInputs.FullPrecision(ref logits);
        using var scope = NewDisposeScope();
        var (x, y) = LossInputs.MultiClass(logits, labels);
        var valid = LossInputs.CheckedValidMask(y, IgnoreIndex, x.shape[1], $"logits {LossInputs.Shape(logits)}");
        var work = LossInputs.WorkType(x);
        var target = y.masked_fill(~valid, 0).unsqueeze(1);
        var logpTarget = x.to(work).log_softmax(1).gather(1, target).squeeze(1);
        // (1 − p)^γ through clamp_min(0): 1 − exp(log p) can round below 0, and pow of a negative base is NaN.
        var focus = (1 - logpTarget.exp()).clamp_min(0).pow(Gamma);
        var loss = LossInputs.MaskedMean(-Alpha * focus * logpTarget, valid.to(work));
        return loss.to(logits.dtype).MoveToOuterDisposeScope();
    }
}
