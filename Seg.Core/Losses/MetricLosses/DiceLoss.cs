using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses.MetricLosses;

/// <summary>
/// Soft multi-class Dice loss (Milletari et al., V-Net, 3DV 2016, with additive smoothing): p = softmax(logits);
/// per class c, over all non-ignored pixels of the batch, 1 − (2·Σ p_c·[y=c] + s) / (Σ p_c + Σ [y=c] + s); the mean
/// over classes. Takes logits [B,C,H,W] with labels [B,H,W], or [N,C] with [N].
/// </summary>
public sealed class DiceLoss : nn.Module<Tensor, Tensor, Tensor>
{
    /// <summary>Creates the loss.</summary>
    /// <param name="smooth">Additive smoothing s &gt; 0 (keeps absent classes finite: their loss tends to 0 as p_c → 0).</param>
    /// <param name="ignoreIndex">Label of pixels to leave out (default 255), or null for none.</param>
    /// <param name="name">Module name.</param>
    public DiceLoss(double smooth = 1.0, long? ignoreIndex = 255, string name = "dice") : base(name)
    {
        if (!(smooth > 0) || double.IsInfinity(smooth))
            throw new ArgumentOutOfRangeException(nameof(smooth), smooth, "smooth must be positive and finite.");
        Smooth = smooth;
        IgnoreIndex = ignoreIndex;
        settings = new MetricLossSettings(0.5, 0.5, 1, perDataset: 1, perImage: 0, perClass: 0, smooth / 2, logLoss: false,
                                          classWeights: null, ClassSelection.All, threshold: 0, ignoreIndex);
    }

    readonly MetricLossSettings settings;

    /// <summary>Smoothing s.</summary>
    public double Smooth { get; }
    /// <summary>Ignored label, or null.</summary>
    public long? IgnoreIndex { get; }

    /// <inheritdoc/>
    /// <remarks>On one-hot labels tp = Σ p·[y=c], so 1 − (2tp + s)/(‖p‖₁ + ‖y‖₁ + s) is the Dice semimetric loss
    /// (α = β = ½) with smoothing s/2, over all classes of the batch: the shared <see cref="MetricLoss"/> core.</remarks>
    public override Tensor forward(Tensor logits, Tensor labels) => MetricLoss.Compute(logits, labels, settings);
}
