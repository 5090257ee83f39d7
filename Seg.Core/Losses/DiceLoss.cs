using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses;

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
    }

    /// <summary>Smoothing s.</summary>
    public double Smooth { get; }
    /// <summary>Ignored label, or null.</summary>
    public long? IgnoreIndex { get; }

    /// <inheritdoc/>
    public override Tensor forward(Tensor logits, Tensor labels)
    {
        using var scope = NewDisposeScope();
        var (x, y) = LossInputs.MultiClass(logits, labels);
        long classes = x.shape[1];
        var valid = LossInputs.CheckedValidMask(y, IgnoreIndex, classes, $"logits {LossInputs.Shape(logits)}");
        var work = LossInputs.WorkType(x);
        var mask = valid.to(work).unsqueeze(1);                                          // [B,1,H,W]
        var p = x.to(work).softmax(1) * mask;
        var target = nn.functional.one_hot(y.masked_fill(~valid, 0), classes)
                         .permute(0, 3, 1, 2).to(work) * mask;                          // [B,C,H,W]
        long[] sumDims = [0, 2, 3];
        var intersection = (p * target).sum(sumDims);
        var cardinality = p.sum(sumDims) + target.sum(sumDims);
        var dice = (2 * intersection + Smooth) / (cardinality + Smooth);
        return (1 - dice).mean().to(logits.dtype).MoveToOuterDisposeScope();
    }
}
