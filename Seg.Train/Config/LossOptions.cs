using Seg.Core.Losses;
using Seg.Core.Losses.LovaszLosses;

namespace Seg.Train.Config;

/// <summary>The keys of one loss type (a <c>loss:</c> term's own keys, beside type, weight, start, end and name);
/// each type has its record, declared with its binder and constructor in <see cref="LossTypes"/>. A record's
/// defaults are the config's defaults.</summary>
public abstract record LossOptions;

/// <summary><c>cross_entropy</c>.</summary>
/// <param name="ClassWeights">Per-class weights, one per class (null: none).</param>
/// <param name="LabelSmoothing">Label smoothing ε in [0,1].</param>
/// <param name="Temperature">Logit temperature T &gt; 0.</param>
public sealed record CrossEntropyOptions(IReadOnlyList<double>? ClassWeights = null, double LabelSmoothing = 0, double Temperature = 1)
    : LossOptions;

/// <summary><c>lovasz_softmax</c>.</summary>
/// <param name="Classes">Classes averaged over (key <c>classes</c>: present, all or a list of class ids).</param>
/// <param name="PerImage">Compute per image and average (default: the library's).</param>
/// <param name="Bins">0 for the exact loss, or the number of histogram bins of the approximate one.</param>
public sealed record LovaszSoftmaxOptions(ClassSelection Classes = default, bool PerImage = LovaszSoftmaxLoss.DefaultPerImage, int Bins = 0)
    : LossOptions;

/// <summary><c>lovasz_hinge</c>.</summary>
/// <param name="PerImage">Compute per image and average (default: the library's, true).</param>
public sealed record LovaszHingeOptions(bool PerImage = LovaszHingeLoss.DefaultPerImage) : LossOptions;

/// <summary><c>lovasz_sigmoid</c>.</summary>
/// <param name="PerImage">Compute per image and average (default: the library's, false).</param>
public sealed record LovaszSigmoidOptions(bool PerImage = LovaszSigmoidLoss.DefaultPerImage) : LossOptions;

/// <summary><c>dice</c>.</summary>
/// <param name="Smooth">Additive smoothing s &gt; 0.</param>
public sealed record DiceOptions(double Smooth = 1) : LossOptions;

/// <summary><c>focal</c>.</summary>
/// <param name="Gamma">Focusing parameter γ ≥ 0.</param>
/// <param name="Alpha">Class-balance factor α ≥ 0.</param>
public sealed record FocalOptions(double Gamma = 2, double Alpha = 1) : LossOptions;

/// <summary><c>margin_cross_entropy</c>: no keys of its own; the margin, scale and margin value are the cosine
/// head's (<c>model.head</c>).</summary>
public sealed record MarginCrossEntropyOptions : LossOptions;

/// <summary><c>center</c>.</summary>
/// <param name="CenterAlpha">Center learning rate α in [0,1].</param>
/// <param name="MaxPixels">Pixels sampled per step.</param>
public sealed record CenterOptions(double CenterAlpha = 0.5, int MaxPixels = 4096) : LossOptions;

/// <summary><c>jaccard_metric</c>, <c>dice_metric</c> and (with <see cref="TverskyOptions"/>) <c>tversky</c>:
/// the parameters of <c>Seg.Core.Losses.MetricLosses.MetricLoss</c>.</summary>
/// <param name="PerDataset">Weight of the per-dataset aggregation (key <c>per_dataset</c>).</param>
/// <param name="PerImage">Weight of the per-image aggregation (key <c>per_image</c>: a number, not a switch).</param>
/// <param name="PerClass">Weight of the per-class-over-images aggregation (key <c>per_class</c>).</param>
/// <param name="Smooth">Smoothing constant s &gt; 0.</param>
/// <param name="Gamma">Exponent γ ≥ 1.</param>
/// <param name="LogLoss">−log T instead of 1 − T.</param>
/// <param name="ClassWeights">Per-class weights, one per class (null: none).</param>
/// <param name="Classes">Classes averaged over: null (key value <c>auto</c>) leaves the choice to the loss (present
/// for hard labels, all for soft labels); else present, all or a list of class ids.</param>
/// <param name="Threshold">A class is present where its label exceeds this.</param>
public record MetricLossOptions(double PerDataset = 1, double PerImage = 0, double PerClass = 0, double Smooth = 1, double Gamma = 1,
                                bool LogLoss = false, IReadOnlyList<double>? ClassWeights = null, ClassSelection? Classes = null,
                                double Threshold = 0.01) : LossOptions;

/// <summary><c>tversky</c>: the metric-loss keys plus the weights of false positives and false negatives.</summary>
/// <param name="Alpha">Weight α of false positives.</param>
/// <param name="Beta">Weight β of false negatives.</param>
public sealed record TverskyOptions(double Alpha = 0.5, double Beta = 0.5) : MetricLossOptions;
