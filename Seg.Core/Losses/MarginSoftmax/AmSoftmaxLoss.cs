namespace Seg.Core.Losses.MarginSoftmax;

/// <summary>
/// Additive Margin Softmax (Wang, Cheng, Liu and Liu, "Additive Margin Softmax for Face Verification",
/// IEEE SPL 2018; the same loss as CosFace, Wang et al. CVPR 2018):
/// L = −log( e^{s(cos θ_y − m)} / (e^{s(cos θ_y − m)} + Σ_{j≠y} e^{s cos θ_j}) ), with L2-normalised features and
/// class weights. Takes embeddings [N,D] with labels [N], or pixel embeddings [B,D,H,W] with labels [B,H,W];
/// returns the mean over non-ignored samples.
/// </summary>
public sealed class AmSoftmaxLoss : CosineMarginSoftmax
{
    /// <summary>Creates the loss with its own class weights [classes, features].</summary>
    /// <param name="features">Embedding size D.</param>
    /// <param name="classes">Number of classes C.</param>
    /// <param name="scale">s (the paper uses 30).</param>
    /// <param name="margin">m in cosine units (the paper uses 0.35).</param>
    /// <param name="ignoreIndex">Label value excluded from the loss.</param>
    public AmSoftmaxLoss(long features, long classes, double scale = 30, double margin = 0.35, long ignoreIndex = 255)
        : base(nameof(AmSoftmaxLoss), features, classes, scale, margin, ignoreIndex)
    {
    }

    private protected override MarginKind Kind => MarginKind.Am;
}
