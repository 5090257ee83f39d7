using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Seg.Core.Losses.MarginSoftmax;

/// <summary>
/// Large-Margin Softmax, L-Softmax (Liu, Wen, Yu and Yang, "Large-Margin Softmax Loss for Convolutional Neural
/// Networks", ICML 2016). Logits are the unnormalised f_j = W_j·x (no bias) except the target, which becomes
/// (λ·‖W_y‖‖x‖cos θ_y + ‖W_y‖‖x‖ψ(θ_y)) / (1 + λ) with ψ(θ) = (−1)^k cos(mθ) − 2k for θ ∈ [kπ/m, (k+1)π/m].
/// λ is <see cref="Lambda"/>, or follows <see cref="Annealing"/> per training forward when one is set.
/// Takes embeddings [N,D] with labels [N], or pixel embeddings [B,D,H,W] with labels [B,H,W]; returns the mean
/// cross-entropy over non-ignored samples.
/// </summary>
public sealed class LargeMarginSoftmaxLoss : nn.Module<Tensor, Tensor, Tensor>
{
    /// <summary>Class weights [classes, features]. Float32 until the module is converted.</summary>
    public Parameter weight;

    /// <summary>The integer angular margin m (1 gives plain softmax without bias).</summary>
    public int Margin { get; }

    /// <summary>Embedding size D.</summary>
    public long Features { get; }

    /// <summary>Number of classes C.</summary>
    public long Classes { get; }

    /// <summary>Label value excluded from the loss.</summary>
    public long IgnoreIndex { get; }

    /// <summary>The blend λ ≥ 0 between plain W_y·x and the margin target (0: pure L-Softmax).</summary>
    public double Lambda
    {
        get => lambda;
        set
        {
            if (!(value >= 0)) throw new ArgumentOutOfRangeException(nameof(Lambda), value, "LargeMarginSoftmaxLoss: Lambda must be ≥ 0.");
            lambda = value;
        }
    }
    double lambda;

    /// <summary>
    /// When set, each forward in training mode first sets <see cref="Lambda"/> to
    /// <c>Annealing.LambdaAt(Iteration)</c> and then advances <see cref="Iteration"/>, as the official layer does.
    /// </summary>
    public LargeMarginAnnealing? Annealing { get; set; }

    /// <summary>Training iterations seen so far by the annealing schedule.</summary>
    public long Iteration { get; set; }

    /// <summary>Creates the loss with its own class weights [classes, features].</summary>
    /// <param name="features">Embedding size D.</param>
    /// <param name="classes">Number of classes C.</param>
    /// <param name="margin">The integer angular margin m ≥ 1 (the paper uses 2, 3 or 4).</param>
    /// <param name="ignoreIndex">Label value excluded from the loss.</param>
    public LargeMarginSoftmaxLoss(long features, long classes, int margin = 4, long ignoreIndex = 255)
        : base(nameof(LargeMarginSoftmaxLoss))
    {
        if (features < 1) throw new ArgumentOutOfRangeException(nameof(features), features, "LargeMarginSoftmaxLoss: features must be ≥ 1.");
        if (classes < 2) throw new ArgumentOutOfRangeException(nameof(classes), classes, "LargeMarginSoftmaxLoss: classes must be ≥ 2.");
        LossInputs.CheckTableSize("LargeMarginSoftmaxLoss", features, classes);
        if (margin < 1) throw new ArgumentOutOfRangeException(nameof(margin), margin, "LargeMarginSoftmaxLoss: margin must be an integer ≥ 1.");
        Features = features;
        Classes = classes;
        Margin = margin;
        IgnoreIndex = ignoreIndex;
        weight = new Parameter(nn.init.xavier_uniform_(empty(classes, features, dtype: ScalarType.Float32)));
        RegisterComponents();
    }

    /// <summary>
    /// ψ(θ) = (−1)^k cos(mθ) − 2k on [kπ/m, (k+1)π/m], evaluated from cos θ (elementwise; clamped to [−1, 1]).
    /// cos(mθ) is the Chebyshev polynomial T_m(cos θ), as in the paper, so no acos enters the gradient; k is
    /// read off cos θ against the thresholds cos(jπ/m) and carries no gradient (ψ is continuous across them).
    /// </summary>
    public static Tensor Psi(Tensor cosTheta, int margin)
    {
        if (margin < 1) throw new ArgumentOutOfRangeException(nameof(margin), margin, "Psi: margin must be an integer ≥ 1.");
        using var scope = NewDisposeScope();
        var c = cosTheta.clamp(-1.0, 1.0);
        Tensor previous = ones_like(c), chebyshev = c;
        for (var n = 1; n < margin; n++)
            (previous, chebyshev) = (chebyshev, 2.0 * c * chebyshev - previous);
        var k = zeros_like(c);
        using (no_grad())
            for (var j = 1; j < margin; j++)
                k.add_(c.le(Math.Cos(j * Math.PI / margin)).to_type(c.dtype));
        var sign = 1.0 - 2.0 * k.remainder(2.0);
        return (sign * chebyshev - 2.0 * k).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The logits the loss takes its cross-entropy on ([N,C] or [B,C,H,W]): W_j·x, with the L-Softmax target for
    /// each labelled sample. With <paramref name="labels"/> null (inference), the plain W·x.
    /// </summary>
    public Tensor Logits(Tensor features, Tensor? labels)
    {
        using var precision = LossInputs.FullPrecision(ref features);
        var owner = GetName();
        LossInputs.CheckEmbedding(owner, features, Features);
        LossInputs.CheckDtype(owner, features, weight, nameof(weight));
        using var scope = NewDisposeScope();
        var logits = features.dim() == 2 ? features.matmul(weight.t()) : einsum("bdhw,cd->bchw", features, weight);
        if (labels is null) return logits.MoveToOuterDisposeScope();
        var y = LossInputs.CheckLabels(owner, features, labels, nameof(features));
        LossInputs.CheckLabelRange(owner, y, Classes, IgnoreIndex);

        var valid = y.ne(IgnoreIndex).unsqueeze(1);
        var safe = y.masked_fill(y.eq(IgnoreIndex), 0);
        var index = safe.unsqueeze(1);
        var fy = logits.gather(1, index);
        var norms = features.norm(1, keepdim: true) * weight.norm(1).index_select(0, safe.flatten()).reshape(index.shape);
        var cos = fy / norms.clamp_min(1e-12);
        var target = (Lambda * fy + norms * Psi(cos, Margin)) / (1 + Lambda);
        return logits.scatter(1, index, where(valid, target, fy)).MoveToOuterDisposeScope();
    }

    /// <summary>Mean cross-entropy of <see cref="Logits"/> over the samples (pixels) whose label is not ignored.</summary>
    public override Tensor forward(Tensor features, Tensor labels)
    {
        using var precision = LossInputs.FullPrecision(ref features);
        if (training && Annealing is not null) Lambda = Annealing.LambdaAt(Iteration++);
        using var scope = NewDisposeScope();
        var logits = Logits(features, labels);
        return LossInputs.MeanCrossEntropy(logits, labels.to_type(ScalarType.Int64), IgnoreIndex).MoveToOuterDisposeScope();
    }
}
