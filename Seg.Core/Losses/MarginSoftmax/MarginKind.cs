namespace Seg.Core.Losses.MarginSoftmax;

/// <summary>Which additive margin <see cref="CosineMargin.Apply"/> puts on the target-class cosine.</summary>
public enum MarginKind
{
    /// <summary>No margin: the scaled cosine logits are used as they are (a plain cosine classifier).</summary>
    None,

    /// <summary>Additive cosine margin, AM-Softmax / CosFace: s·(cos θ_y − m).</summary>
    Am,

    /// <summary>Additive angular margin, ArcFace: s·cos(θ_y + m).</summary>
    ArcFace,
}
