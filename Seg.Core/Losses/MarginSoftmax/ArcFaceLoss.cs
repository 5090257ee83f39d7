namespace Seg.Core.Losses.MarginSoftmax;

/// <summary>
/// ArcFace, the additive angular margin loss (Deng, Guo, Xue and Zafeiriou, "ArcFace: Additive Angular Margin Loss
/// for Deep Face Recognition", CVPR 2019): the target logit is s·cos(θ_y + m), the others s·cos θ_j, with
/// L2-normalised features and class weights. Where θ_y + m &gt; π the target is s·(cos θ_y − m·sin m), as in
/// insightface; with easyMargin the margin is only applied where cos θ_y &gt; 0. (Subtracting m from the cosine
/// instead, as some tutorials call "ArcFace", is CosFace: see <see cref="AmSoftmaxLoss"/>.)
/// Takes embeddings [N,D] with labels [N], or pixel embeddings [B,D,H,W] with labels [B,H,W]; returns the mean over
/// non-ignored samples.
/// </summary>
public sealed class ArcFaceLoss : CosineMarginSoftmax
{
    readonly bool easyMargin;

    /// <summary>Creates the loss with its own class weights [classes, features].</summary>
    /// <param name="features">Embedding size D.</param>
    /// <param name="classes">Number of classes C.</param>
    /// <param name="scale">s (the paper uses 64).</param>
    /// <param name="margin">m in radians (the paper uses 0.5).</param>
    /// <param name="easyMargin">Apply the margin only where cos θ_y &gt; 0.</param>
    /// <param name="ignoreIndex">Label value excluded from the loss.</param>
    public ArcFaceLoss(long features, long classes, double scale = 64, double margin = 0.5, bool easyMargin = false,
        long ignoreIndex = 255)
        : base(nameof(ArcFaceLoss), features, classes, scale, margin, ignoreIndex)
    {
        if (margin >= Math.PI / 2)
            throw new ArgumentOutOfRangeException(nameof(margin), margin, "ArcFaceLoss: margin must be below π/2 radians.");
        this.easyMargin = easyMargin;
    }

    /// <summary>Whether the margin is applied only where cos θ_y &gt; 0.</summary>
    public bool IsEasyMargin => easyMargin;

    private protected override MarginKind Kind => MarginKind.ArcFace;

    private protected override bool EasyMargin => easyMargin;
}
