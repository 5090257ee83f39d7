using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses.MetricLosses;

/// <summary>
/// Tversky loss (Salehi et al., "Tversky loss function for image segmentation using 3D fully convolutional deep
/// networks", MLMI 2017) with a focal exponent, named as segmentation_models_pytorch and MONAI name it:
/// <see cref="MetricLoss"/> with free α (false positives) and β (false negatives); α = β = ½ is the Dice
/// semimetric loss, α = β = 1 the Jaccard metric loss.
/// </summary>
public sealed class TverskyLoss : nn.Module<Tensor, Tensor, Tensor>
{
    /// <summary>Creates the loss; the parameters are those of <see cref="MetricLoss.Tversky"/>.</summary>
    public TverskyLoss(double alpha = 0.5, double beta = 0.5, double gamma = 1, double perDataset = 1, double perImage = 0,
                       double perClass = 0, double smooth = 1, bool logLoss = false, double[]? classWeights = null,
                       ClassSelection? classes = null, double threshold = 0.01, long? ignoreIndex = 255,
                       string name = "tversky") : base(name) =>
        Settings = new MetricLossSettings(alpha, beta, gamma, perDataset, perImage, perClass, smooth, logLoss, classWeights,
                                          classes, threshold, ignoreIndex);

    /// <summary>The loss's parameters.</summary>
    public MetricLossSettings Settings { get; }

    /// <inheritdoc/>
    public override Tensor forward(Tensor logits, Tensor labels) => MetricLoss.Compute(logits, labels, Settings);
}
