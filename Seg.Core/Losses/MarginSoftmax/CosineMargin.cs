using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses.MarginSoftmax;

/// <summary>
/// The cosine classifier logits and the additive margins on them, shared by <see cref="AmSoftmaxLoss"/>,
/// <see cref="ArcFaceLoss"/>, <see cref="MarginCrossEntropyLoss"/> and the cosine segmentation head.
/// The class dimension is always dimension 1: logits are [N,C] for embeddings and [B,C,H,W] for pixels.
/// </summary>
public static class CosineMargin
{
    /// <summary>
    /// s·cos θ between every embedding and every class weight: features [N,D] → [N,C], pixel embeddings
    /// [B,D,H,W] → [B,C,H,W], with <paramref name="weight"/> [C,D]. Both sides are L2-normalised here (norms
    /// clamped at 1e-12, as <c>F.normalize</c> does).
    /// </summary>
    /// <exception cref="ArgumentException">Features that are not [N,D] or [B,D,H,W], or a weight that is not [C,D].</exception>
    public static Tensor ScaledCosine(Tensor features, Tensor weight, double scale)
    {
        if ((features.dim() != 2 && features.dim() != 4) || weight.dim() != 2 || features.shape[1] != weight.shape[1])
            throw new ArgumentException(
                $"{nameof(CosineMargin)}.{nameof(ScaledCosine)}: features must be [N,D] or [B,D,H,W] and weight [C,D] with the same D; " +
                $"got features {LossInputs.Shape(features)} and weight {LossInputs.Shape(weight)}.", nameof(features));
        using var scope = NewDisposeScope();
        var w = nn.functional.normalize(weight, p: 2, dim: 1);
        // x̂·ŵ = (x·ŵ)/‖x‖: the features' norm is divided out of the C products instead of normalising the D
        // channels of every pixel first. On pixels that is the difference between a 1×1 convolution and a
        // strided normalisation with its backward: the cosine head + cross-entropy, forward and backward, took
        // 7 ms instead of 40 ms for B=8, D=64, C=11, 64×64 on 2 threads.
        var inverseNorm = features.square().sum(1, keepdim: true).clamp_min(1e-24).rsqrt();
        var dot = features.dim() == 2
            ? features.matmul(w.t())
            : nn.functional.conv2d(features, w.view(w.shape[0], w.shape[1], 1, 1));
        return (dot * inverseNorm * scale).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Applies the margin of <paramref name="kind"/> to the target-class entry of scaled cosine logits
    /// (s·cos θ, [N,C] or [B,C,H,W]); the other entries, and every entry of an ignored pixel, are returned unchanged.
    /// <list type="bullet">
    /// <item><see cref="MarginKind.Am"/> (Wang et al. 2018, "Additive Margin Softmax"; = CosFace): s·(cos θ_y − m).</item>
    /// <item><see cref="MarginKind.ArcFace"/> (Deng et al. 2019, "ArcFace: Additive Angular Margin Loss"):
    /// s·cos(θ_y + m). Where θ_y + m would pass π (cos θ_y ≤ cos(π − m)) the target becomes s·(cos θ_y − m·sin m),
    /// as in insightface, which keeps the logit decreasing in θ; with <paramref name="easyMargin"/> the margin is
    /// applied only where cos θ_y &gt; 0 and the plain cosine is kept elsewhere.</item>
    /// </list>
    /// The cosine is recovered as clamp(logit / s, −1, 1), so logits that were bilinearly upsampled from s·cos
    /// (still within [−s, s]) are fine.
    /// </summary>
    /// <param name="scaledCosine">s·cos θ logits, class dimension 1.</param>
    /// <param name="labels">Class indices, shape of the logits without dimension 1.</param>
    /// <param name="kind">Which margin.</param>
    /// <param name="scale">s, the scale the logits were built with.</param>
    /// <param name="margin">m (cosine units for AM, radians for ArcFace).</param>
    /// <param name="easyMargin">ArcFace only: no margin where cos θ_y ≤ 0.</param>
    /// <param name="ignoreIndex">Label value of pixels that get no margin (and no loss).</param>
    public static Tensor Apply(Tensor scaledCosine, Tensor labels, MarginKind kind, double scale, double margin,
        bool easyMargin = false, long ignoreIndex = 255)
    {
        const string owner = nameof(CosineMargin) + "." + nameof(Apply);
        if (scaledCosine.dim() < 2)
            throw new ArgumentException(
                $"{owner}: scaledCosine must be [N,C] or [B,C,H,W]; got {LossInputs.Shape(scaledCosine)}.",
                nameof(scaledCosine));
        if (!(scale > 0)) throw new ArgumentOutOfRangeException(nameof(scale), scale, $"{owner}: scale must be > 0.");
        using var scope = NewDisposeScope();
        var y = LossInputs.CheckLabels(owner, scaledCosine, labels, nameof(scaledCosine));
        if (kind == MarginKind.None) return scaledCosine.alias().MoveToOuterDisposeScope();
        LossInputs.CheckLabelRange(owner, y, scaledCosine.shape[1], ignoreIndex);

        var valid = y.ne(ignoreIndex).unsqueeze(1);
        var index = y.masked_fill(y.eq(ignoreIndex), 0).unsqueeze(1);
        var targetLogit = scaledCosine.gather(1, index);
        var cos = (targetLogit / scale).clamp(-1.0, 1.0);
        var withMargin = kind switch
        {
            MarginKind.Am => cos - margin,
            MarginKind.ArcFace => ArcFaceTarget(cos, margin, easyMargin),
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, $"{owner}: unknown margin kind."),
        };
        var target = where(valid, withMargin * scale, targetLogit);
        return scaledCosine.scatter(1, index, target).MoveToOuterDisposeScope();
    }

    /// <summary>cos(θ + m) from cos θ, with the insightface fallback (or easy margin) past θ + m = π.</summary>
    static Tensor ArcFaceTarget(Tensor cos, double margin, bool easyMargin)
    {
        // The small floor keeps sqrt's derivative finite at cos = ±1; torch.where would turn 0·∞ into NaN.
        var sin = (1.0 - cos * cos).clamp_min(1e-12).sqrt();
        var phi = cos * Math.Cos(margin) - sin * Math.Sin(margin);
        return easyMargin
            ? where(cos > 0.0, phi, cos)
            : where(cos > Math.Cos(Math.PI - margin), phi, cos - margin * Math.Sin(margin));
    }
}
