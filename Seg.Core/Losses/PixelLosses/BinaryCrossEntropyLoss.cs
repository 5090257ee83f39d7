using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses.PixelLosses;

/// <summary>
/// Binary cross-entropy on logits: per pixel −[w₊·y·log σ(x) + (1−y)·log(1−σ(x))] (w₊ the positive-class weight,
/// computed with log-sigmoid for stability), averaged over non-ignored pixels (0 when there are none). Takes
/// scores [B,H,W] or [B,1,H,W] with labels [B,H,W], or [N] or [N,1] with [N]; labels in {0,1}.
/// </summary>
public sealed class BinaryCrossEntropyLoss : nn.Module<Tensor, Tensor, Tensor>
{
    /// <summary>Creates the loss.</summary>
    /// <param name="positiveWeight">Weight w₊ of the foreground term (1 = plain BCE).</param>
    /// <param name="ignoreIndex">Label of pixels to leave out (default 255), or null for none.</param>
    /// <param name="name">Module name.</param>
    public BinaryCrossEntropyLoss(double positiveWeight = 1.0, long? ignoreIndex = 255, string name = "binary_cross_entropy") : base(name)
    {
        if (!(positiveWeight >= 0) || double.IsInfinity(positiveWeight))
            throw new ArgumentOutOfRangeException(nameof(positiveWeight), positiveWeight, "the positive weight must be finite and non-negative.");
        PositiveWeight = positiveWeight;
        IgnoreIndex = ignoreIndex;
    }

    /// <summary>Foreground weight w₊.</summary>
    public double PositiveWeight { get; }
    /// <summary>Ignored label, or null.</summary>
    public long? IgnoreIndex { get; }

    /// <inheritdoc/>
    public override Tensor forward(Tensor logits, Tensor labels)
    {
        using var precision = LossInputs.FullPrecision(ref logits);
        using var scope = NewDisposeScope();
        var (x, y) = LossInputs.Binary(logits, labels);
        var valid = LossInputs.CheckedValidMask(y, IgnoreIndex, 2, $"binary logits {LossInputs.Shape(logits)}");
        var work = LossInputs.WorkType(x);
        var z = x.to(work);
        var target = (y.eq(1) & valid).to(work);
        var perPixel = -(PositiveWeight * target * nn.functional.logsigmoid(z) + (1 - target) * nn.functional.logsigmoid(-z));
        var loss = LossInputs.MaskedMean(perPixel, valid.to(work));
        return loss.to(logits.dtype).MoveToOuterDisposeScope();
    }
}
