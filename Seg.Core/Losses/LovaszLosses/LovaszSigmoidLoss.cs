using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses.LovaszLosses;

/// <summary>
/// Multi-label Lovász loss on logits: sigmoid per channel, then <see cref="Lovasz.Sigmoid"/>. Takes logits
/// [B,C,H,W] with multi-label targets [B,C,H,W] in {0,1} (or the ignore index), or with class ids [B,H,W], which
/// become one-vs-rest targets (channel c is foreground where the label is c; ignored pixels are ignored in every
/// channel).
/// </summary>
public sealed class LovaszSigmoidLoss : nn.Module<Tensor, Tensor, Tensor>
{
    /// <summary>The default of <c>perImage</c>: false (one ranking over the batch).</summary>
    public const bool DefaultPerImage = false;

    /// <summary>Creates the loss.</summary>
    /// <param name="perImage">Per channel, average over images first.</param>
    /// <param name="ignoreIndex">Target value of pixels to leave out (default 255), or null for none; not 0 or 1,
    /// which are target values.</param>
    /// <param name="name">Module name.</param>
    public LovaszSigmoidLoss(bool perImage = DefaultPerImage, long? ignoreIndex = 255, string name = "lovasz_sigmoid") : base(name)
    {
        if (ignoreIndex is 0 or 1)
            throw new ArgumentOutOfRangeException(nameof(ignoreIndex), ignoreIndex, "the ignore index cannot be 0 or 1: those are the multi-label target values.");
        PerImage = perImage;
        IgnoreIndex = ignoreIndex;
    }

    /// <summary>Per-image averaging.</summary>
    public bool PerImage { get; }
    /// <summary>Ignored target value, or null.</summary>
    public long? IgnoreIndex { get; }

    /// <inheritdoc/>
    public override Tensor forward(Tensor logits, Tensor targets)
    {
        using var precision = LossInputs.FullPrecision(ref logits);
        using var scope = NewDisposeScope();
        LossInputs.RequireFloating(logits, nameof(logits));
        var (x, multiLabel) = targets.dim() == logits.dim() ? (logits, targets) : OneVsRest(logits, targets);
        var probas = x.to(LossInputs.WorkType(x)).sigmoid();
        return Lovasz.Sigmoid(probas, multiLabel, PerImage, IgnoreIndex).to(logits.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>Class ids [B,H,W] (or [N] with logits [N,C]) as [B,C,H,W] logits and one-vs-rest targets; ignored
    /// (or, off the CPU, out-of-range) pixels get the ignore index in every channel.</summary>
    (Tensor Logits, Tensor Targets) OneVsRest(Tensor logits, Tensor labels)
    {
        var (x, y) = LossInputs.MultiClass(logits, labels);
        long classes = x.shape[1];
        var valid = LossInputs.CheckedValidMask(y, IgnoreIndex, classes, $"logits {LossInputs.Shape(logits)}").unsqueeze(1);
        var oneHot = y.unsqueeze(1).eq(arange(classes, device: y.device).view(1, classes, 1, 1)).to(ScalarType.Int64);
        return (x, IgnoreIndex is long ignore ? oneHot.masked_fill(~valid, ignore) : oneHot);
    }
}
