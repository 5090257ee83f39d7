using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses.MetricLosses;

/// <summary>
/// Soft labels for the metric losses (<see cref="MetricLoss"/>), which, unlike cross-entropy-style one-hot targets
/// and the Lovász losses, are exact on soft labels. Teacher probabilities (a softmax) are soft labels as they are.
/// </summary>
public static class SoftLabels
{
    /// <summary>
    /// Boundary label smoothing, the recipe of the Jaccard metric loss paper (Wang, Ning, Blaschko, NeurIPS 2023):
    /// y = (1 − ε)·onehot + ε/C on pixels whose k×k window holds another class, one-hot elsewhere. As in the
    /// official code, a window that touches an ignored pixel is not smoothed, and ignored pixels get an all-zero
    /// vector, which the metric losses leave out. Needs no device sync: two max-pools of the label map and one of
    /// the ignore mask.
    /// </summary>
    /// <param name="labels">[B,H,W] integer class ids.</param>
    /// <param name="numClasses">Number of classes C.</param>
    /// <param name="epsilon">ε in [0,1].</param>
    /// <param name="kernel">Window side k, odd and ≥ 1 (1: no pixel is on a boundary).</param>
    /// <param name="ignoreIndex">Ignored label, or null.</param>
    /// <returns>[B,C,H,W] float32 soft labels on the labels' device.</returns>
    /// <exception cref="ArgumentException">Labels that are not [B,H,W] integers, a bad parameter, labels outside
    /// [0, C) that are not the ignore index (checked on CPU tensors; on an accelerator they count as ignored).</exception>
    public static Tensor BoundarySmoothing(Tensor labels, long numClasses, double epsilon = 0.5, int kernel = 3, long? ignoreIndex = 255)
    {
        ArgumentNullException.ThrowIfNull(labels);
        if (labels.dim() != 3)
            throw new ArgumentException($"labels {LossInputs.Shape(labels)} must be [B,H,W] class ids.", nameof(labels));
        if (numClasses < 1 || numClasses > LossInputs.MaxClasses)
            throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, $"numClasses must lie in [1, {LossInputs.MaxClasses}].");
        if (labels.NumberOfElements > 0 && numClasses > (1L << 34) / labels.NumberOfElements)
            throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses,
                $"soft labels of {numClasses} classes for labels {LossInputs.Shape(labels)} would hold more than 2^34 values.");
        if (!(epsilon >= 0 && epsilon <= 1))
            throw new ArgumentOutOfRangeException(nameof(epsilon), epsilon, "epsilon must lie in [0,1].");
        if (kernel < 1 || kernel % 2 == 0)
            throw new ArgumentOutOfRangeException(nameof(kernel), kernel, "kernel must be odd and at least 1, so that the window is centred on its pixel.");

        using var scope = NewDisposeScope();
        var y = LossInputs.IntegerLabels(labels);
        var valid = LossInputs.CheckedValidMask(y, ignoreIndex, numClasses, $"{numClasses} classes");
        var oneHot = (y.unsqueeze(1).eq(arange(numClasses, device: y.device).view(1, -1, 1, 1)) & valid.unsqueeze(1))
            .to(ScalarType.Float32);                                                                  // [B,C,H,W]
        if (epsilon == 0 || kernel == 1 || y.numel() == 0)
            return oneHot.MoveToOuterDisposeScope();

        // Another class lies in the window exactly where the window's largest and smallest label differ; windows
        // with an ignored pixel are excluded below, so the value ignored pixels hold here does not matter.
        // Ids stay exact in float32 up to 2^24.
        var ids = y.masked_fill(~valid, 0).to(ScalarType.Float32).unsqueeze(1);          // [B,1,H,W]
        var largest = MaxPool(ids, kernel);
        var smallest = -MaxPool(-ids, kernel);
        var ignoredNear = MaxPool((~valid).to(ScalarType.Float32).unsqueeze(1), kernel).gt(0);
        var boundary = (largest.ne(smallest) & ~ignoredNear & valid.unsqueeze(1)).to(ScalarType.Float32);
        return (oneHot + boundary * (epsilon / numClasses - epsilon * oneHot)).MoveToOuterDisposeScope();
    }

    /// <summary>k×k max over the window centred on each pixel; the padding never wins (it is −∞).</summary>
    static Tensor MaxPool(Tensor x, int kernel) =>
        nn.functional.max_pool2d(x, kernel, stride: 1, padding: kernel / 2);
}
