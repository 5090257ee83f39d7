using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses.MarginSoftmax;

/// <summary>
/// Cross-entropy on scaled cosine logits (e.g. from a cosine segmentation head) after the training-time margin of
/// <see cref="CosineMargin.Apply"/>: AM-Softmax/CosFace or ArcFace on logits that the model already produced, so the
/// same head is evaluated without the margin. Input (s·cos θ [N,C] or [B,C,H,W], labels [N] or [B,H,W]) → mean
/// over the non-ignored entries.
/// </summary>
public sealed class MarginCrossEntropyLoss : nn.Module<Tensor, Tensor, Tensor>
{
    /// <summary>The margin applied.</summary>
    public MarginKind Kind { get; }

    /// <summary>The scale s the logits were built with.</summary>
    public double Scale { get; }

    /// <summary>The margin m.</summary>
    public double Margin { get; }

    /// <summary>ArcFace only: apply the margin only where cos θ_y &gt; 0.</summary>
    public bool EasyMargin { get; }

    /// <summary>Label value excluded from the loss.</summary>
    public long IgnoreIndex { get; }

    /// <summary>Creates the loss.</summary>
    public MarginCrossEntropyLoss(MarginKind kind, double scale, double margin, long ignoreIndex = 255,
        bool easyMargin = false) : base(nameof(MarginCrossEntropyLoss))
    {
        if (!(scale > 0)) throw new ArgumentOutOfRangeException(nameof(scale), scale, "MarginCrossEntropyLoss: scale must be > 0.");
        Kind = kind;
        Scale = scale;
        Margin = margin;
        IgnoreIndex = ignoreIndex;
        EasyMargin = easyMargin;
    }

    /// <inheritdoc cref="MarginCrossEntropyLoss"/>
    public override Tensor forward(Tensor scaledCosine, Tensor labels)
    {
        using var precision = LossInputs.FullPrecision(ref scaledCosine);
        using var scope = NewDisposeScope();
        var y = LossInputs.CheckLabels(GetName(), scaledCosine, labels, nameof(scaledCosine));
        LossInputs.CheckLabelRange(GetName(), y, scaledCosine.shape[1], IgnoreIndex);
        var logits = CosineMargin.Apply(scaledCosine, y, Kind, Scale, Margin, EasyMargin, IgnoreIndex);
        return LossInputs.MeanCrossEntropy(logits, y, IgnoreIndex).MoveToOuterDisposeScope();
    }
}
