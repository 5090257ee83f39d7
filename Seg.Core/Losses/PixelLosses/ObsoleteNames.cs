using System.ComponentModel;

namespace Seg.Core.Losses.PixelLosses;

/// <summary>The former name of <see cref="SoftmaxCrossEntropyLoss"/>, kept for one release: it collides with
/// <c>TorchSharp.Modules.CrossEntropyLoss</c> when both namespaces are imported.</summary>
[Obsolete("Renamed SoftmaxCrossEntropyLoss (same parameters): CrossEntropyLoss collides with TorchSharp.Modules.CrossEntropyLoss. This alias goes in the next release.")]
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class CrossEntropyLoss(IReadOnlyList<double>? classWeights = null, long? ignoreIndex = 255,
                                     double labelSmoothing = 0.0, double temperature = 1.0, string name = "cross_entropy")
    : SoftmaxCrossEntropyLoss(classWeights, ignoreIndex, labelSmoothing, temperature, name);
