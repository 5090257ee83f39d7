using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses.MetricLosses;

/// <summary>
/// Dice semimetric loss (Wang et al., MICCAI 2023) on logits: <see cref="MetricLoss"/> with α = β = ½, i.e. per
/// class 1 − (tp + s)/(tp + ½fp + ½fn + s) = 1 − (2tp + 2s)/(‖p‖₁ + ‖y‖₁ + 2s). On hard labels it is the soft Dice
/// loss; on soft labels it is 0 exactly when p = y.
/// </summary>
public sealed class DiceMetricLoss : nn.Module<Tensor, Tensor, Tensor>
{
    /// <summary>Creates the loss; the parameters are those of <see cref="MetricLoss.Tversky"/>.</summary>
    public DiceMetricLoss(double perDataset = 1, double perImage = 0, double perClass = 0, double smooth = 1,
                          double gamma = 1, bool logLoss = false, double[]? classWeights = null, ClassSelection? classes = null,
                          double threshold = 0.01, long? ignoreIndex = 255, string name = "dice_metric") : base(name) =>
        Settings = new MetricLossSettings(0.5, 0.5, gamma, perDataset, perImage, perClass, smooth, logLoss, classWeights,
                                          classes, threshold, ignoreIndex);

    /// <summary>The loss's parameters.</summary>
    public MetricLossSettings Settings { get; }

    /// <inheritdoc/>
    public override Tensor forward(Tensor logits, Tensor labels) => MetricLoss.Compute(logits, labels, Settings);
}
