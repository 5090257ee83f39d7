using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Seg.Core.Losses.MarginSoftmax;

/// <summary>
/// Common body of the normalised-weight margin losses (<see cref="AmSoftmaxLoss"/>, <see cref="ArcFaceLoss"/>):
/// a learnable class-weight matrix, scaled cosine logits, the margin of <see cref="CosineMargin.Apply"/> on the
/// target class, and the mean cross-entropy over non-ignored samples or pixels.
/// </summary>
public abstract class CosineMarginSoftmax : nn.Module<Tensor, Tensor, Tensor>
{
    /// <summary>Class weights [classes, features] (normalised on use). Float32 until the module is converted.</summary>
    public Parameter weight;

    /// <summary>The scale s.</summary>
    public double Scale { get; }

    /// <summary>The margin m.</summary>
    public double Margin { get; }

    /// <summary>Label value excluded from the loss (and given no margin).</summary>
    public long IgnoreIndex { get; }

    /// <summary>Embedding size D.</summary>
    public long Features { get; }

    /// <summary>Number of classes C.</summary>
    public long Classes { get; }

    private protected abstract MarginKind Kind { get; }

    private protected virtual bool EasyMargin => false;

    private protected CosineMarginSoftmax(string name, long features, long classes, double scale, double margin,
        long ignoreIndex) : base(name)
    {
        if (features < 1) throw new ArgumentOutOfRangeException(nameof(features), features, $"{name}: features must be ≥ 1.");
        if (classes < 2) throw new ArgumentOutOfRangeException(nameof(classes), classes, $"{name}: classes must be ≥ 2.");
        LossInputs.CheckTableSize(name, features, classes);
        if (!(scale > 0)) throw new ArgumentOutOfRangeException(nameof(scale), scale, $"{name}: scale must be > 0.");
        if (margin < 0) throw new ArgumentOutOfRangeException(nameof(margin), margin, $"{name}: margin must be ≥ 0.");
        Features = features;
        Classes = classes;
        Scale = scale;
        Margin = margin;
        IgnoreIndex = ignoreIndex;
        weight = new Parameter(nn.init.xavier_uniform_(empty(classes, features, dtype: ScalarType.Float32)));
        RegisterComponents();
    }

    /// <summary>
    /// The logits the loss takes its cross-entropy on: s·cos θ with the margin on each target class
    /// ([N,C] for features [N,D], [B,C,H,W] for [B,D,H,W]). With <paramref name="labels"/> null (inference),
    /// the plain scaled cosine logits.
    /// </summary>
    public Tensor Logits(Tensor features, Tensor? labels)
    {
        using var precision = LossInputs.FullPrecision(ref features);
        LossInputs.CheckEmbedding(GetName(), features, Features);
        LossInputs.CheckDtype(GetName(), features, weight, nameof(weight));
        using var scope = NewDisposeScope();
        var cosine = CosineMargin.ScaledCosine(features, weight, Scale);
        if (labels is null) return cosine.MoveToOuterDisposeScope();
        var y = LossInputs.CheckLabels(GetName(), features, labels, nameof(features));
        LossInputs.CheckLabelRange(GetName(), y, Classes, IgnoreIndex);
        return CosineMargin.Apply(cosine, y, Kind, Scale, Margin, EasyMargin, IgnoreIndex).MoveToOuterDisposeScope();
    }

    /// <summary>Mean cross-entropy of <see cref="Logits"/> over the samples (pixels) whose label is not ignored.</summary>
    public override Tensor forward(Tensor features, Tensor labels)
    {
        using var precision = LossInputs.FullPrecision(ref features);
        using var scope = NewDisposeScope();
        var logits = Logits(features, labels);
        return LossInputs.MeanCrossEntropy(logits, labels.to_type(ScalarType.Int64), IgnoreIndex).MoveToOuterDisposeScope();
    }
}
