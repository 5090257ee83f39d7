using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Seg.Core.Losses.MarginSoftmax;

/// <summary>
/// Center loss (Wen, Zhang, Li and Qiao, "A Discriminative Feature Learning Approach for Deep Face Recognition",
/// ECCV 2016): L = ½·mean_i ‖x_i − c_{y_i}‖² over the non-ignored samples, pulling each embedding to its class
/// center; used next to a softmax loss. The centers are not trained by the optimizer (requires_grad is false;
/// set <c>centers.requires_grad = true</c> to ask for that): call <see cref="UpdateCenters"/> each step, which
/// applies the paper's rule Δc_j = Σ_i [y_i = j](c_j − x_i) / (1 + Σ_i [y_i = j]), c_j ← c_j − α·Δc_j.
/// Takes embeddings [N,D] with labels [N], or pixel embeddings [B,D,H,W] with labels [B,H,W] (every non-ignored
/// pixel; <see cref="PixelEmbeddingSampler"/> picks a subset at the embedding's resolution).
/// </summary>
public sealed class CenterLoss : nn.Module<Tensor, Tensor, Tensor>
{
    /// <summary>Class centers [classes, features], zero at start. Float32 until the module is converted.</summary>
    public Parameter centers;

    /// <summary>The center learning rate α of <see cref="UpdateCenters"/>.</summary>
    public double Alpha { get; }

    /// <summary>Embedding size D.</summary>
    public long Features { get; }

    /// <summary>Number of classes C.</summary>
    public long Classes { get; }

    /// <summary>Label value excluded from the loss and the center update.</summary>
    public long IgnoreIndex { get; }

    /// <summary>Creates the loss with zero centers [classes, features].</summary>
    /// <param name="features">Embedding size D.</param>
    /// <param name="classes">Number of classes C.</param>
    /// <param name="alpha">α ∈ [0, 1], the center learning rate (the paper uses 0.5).</param>
    /// <param name="ignoreIndex">Label value excluded from the loss.</param>
    public CenterLoss(long features, long classes, double alpha = 0.5, long ignoreIndex = 255) : base(nameof(CenterLoss))
    {
        if (features < 1) throw new ArgumentOutOfRangeException(nameof(features), features, "CenterLoss: features must be ≥ 1.");
        if (classes < 1) throw new ArgumentOutOfRangeException(nameof(classes), classes, "CenterLoss: classes must be ≥ 1.");
        LossInputs.CheckTableSize("CenterLoss", features, classes);
        if (!(alpha >= 0 && alpha <= 1)) throw new ArgumentOutOfRangeException(nameof(alpha), alpha, "CenterLoss: alpha must be in [0, 1].");
        Features = features;
        Classes = classes;
        Alpha = alpha;
        IgnoreIndex = ignoreIndex;
        centers = new Parameter(zeros(classes, features, dtype: ScalarType.Float32), requires_grad: false);
        RegisterComponents();
    }

    /// <inheritdoc cref="CenterLoss"/>
    public override Tensor forward(Tensor features, Tensor labels)
    {
        using var precision = LossInputs.FullPrecision(ref features);
        var (x, y) = Rows(features, labels);
        using var scope = NewDisposeScope();
        using (x)
        using (y)
        {
            if (y.shape[0] == 0) return (features.sum() * 0.0).MoveToOuterDisposeScope();
            var distance = (x - centers.index_select(0, y)).pow(2).sum(1);
            return (0.5 * distance.mean()).MoveToOuterDisposeScope();
        }
    }

    /// <summary>
    /// One step of the paper's center update from this batch (no gradient):
    /// c_j ← c_j − α·Σ_i [y_i = j](c_j − x_i) / (1 + Σ_i [y_i = j]). Classes absent from the batch do not move.
    /// </summary>
    public void UpdateCenters(Tensor x, Tensor labels)
    {
        using var precision = LossInputs.FullPrecision(ref x);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (rows, y) = Rows(x, labels);
        if (y.shape[0] == 0) return;
        var counts = bincount(y, minlength: Classes).to_type(centers.dtype).unsqueeze(1);
        var sumX = zeros_like(centers).index_add_(0, y, rows.detach(), 1.0);
        var delta = (counts * centers - sumX) / (1.0 + counts);
        centers.sub_(Alpha * delta);
    }

    (Tensor Rows, Tensor Labels) Rows(Tensor features, Tensor labels)
    {
        LossInputs.CheckEmbedding(GetName(), features, Features);
        LossInputs.CheckDtype(GetName(), features, centers, nameof(centers));
        var (x, y) = EmbeddingRows.NonIgnored(GetName(), features, labels, IgnoreIndex);
        LossInputs.CheckLabelRange(GetName(), y, Classes, IgnoreIndex);
        return (x, y);
    }
}
