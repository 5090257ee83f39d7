using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses.MetricLosses;

/// <summary>
/// Jaccard metric loss (Wang, Ning, Blaschko, NeurIPS 2023) on logits: <see cref="MetricLoss"/> with α = β = 1,
/// i.e. per class 1 − (tp + s)/(tp + fp + fn + s) with tp = (‖p‖₁ + ‖y‖₁ − ‖p − y‖₁)/2. On hard labels it is the
/// soft Jaccard loss; on soft labels (boundary smoothing, distillation) it is 0 exactly when p = y.
/// </summary>
public sealed class JaccardMetricLoss : nn.Module<Tensor, Tensor, Tensor>
{
    /// <summary>Creates the loss; the parameters are those of <see cref="MetricLoss.Tversky"/>.</summary>
    public JaccardMetricLoss(double perDataset = 1, double perImage = 0, double perClass = 0, double smooth = 1,
                             double gamma = 1, bool logLoss = false, double[]? classWeights = null, ClassSelection? classes = null,
                             double threshold = 0.01, long? ignoreIndex = 255, string name = "jaccard_metric") : base(name) =>
        Settings = new MetricLossSettings(1, 1, gamma, perDataset, perImage, perClass, smooth, logLoss, classWeights,
                                          classes, threshold, ignoreIndex);

    /// <summary>The loss's parameters.</summary>
    public MetricLossSettings Settings { get; }

    /// <inheritdoc/>
    public override Tensor forward(Tensor logits, Tensor labels) => MetricLoss.Compute(logits, labels, Settings);
}
