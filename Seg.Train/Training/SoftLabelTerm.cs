using Seg.Core.Losses;
using Seg.Core.Losses.MetricLosses;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Train.Training;

/// <summary>
/// A <see cref="CompositeLoss"/> term that takes soft labels (<c>data.soft_labels</c>): it turns the batch's hard
/// labels into boundary-smoothed soft labels (<see cref="SoftLabels.BoundarySmoothing"/>; ignored pixels become
/// all-zero vectors, which the metric losses leave out) and hands them to the wrapped loss. The other terms of the
/// composite keep the hard labels.
/// </summary>
public sealed class SoftLabelTerm : nn.Module<Tensor, Tensor, Tensor>
{
    readonly long numClasses;
    readonly double epsilon;
    readonly int kernel;
    readonly long ignoreIndex;
    /// <summary>The wrapped loss (logits, soft labels) → scalar.</summary>
    public nn.Module<Tensor, Tensor, Tensor> loss;

    /// <summary>Wraps <paramref name="loss"/>.</summary>
    public SoftLabelTerm(nn.Module<Tensor, Tensor, Tensor> loss, long numClasses, double epsilon, int kernel, long ignoreIndex, string name) : base(name)
    {
        this.loss = loss;
        this.numClasses = numClasses;
        this.epsilon = epsilon;
        this.kernel = kernel;
        this.ignoreIndex = ignoreIndex;
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor logits, Tensor labels)
    {
        using var scope = NewDisposeScope();
        var soft = SoftLabels.BoundarySmoothing(labels, numClasses, epsilon, kernel, ignoreIndex);
        return loss.call(logits, soft).MoveToOuterDisposeScope();
    }
}
