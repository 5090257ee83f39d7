using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Metrics;

/// <summary>
/// Accumulates a segmentation confusion matrix (rows: ground truth, columns: prediction) over many batches, on
/// the device of the tensors it is given, with one <c>bincount</c> per batch. It also accumulates the per-image
/// mean IoU (each image's IoU over the classes present in its ground truth or prediction), the measure that
/// Lovász-Softmax in per-image mode optimises. Pixels whose label equals <see cref="IgnoreIndex"/> count nowhere.
/// </summary>
/// <example><code>
/// var cm = new ConfusionMatrix(numClasses: 21);
/// foreach (var (images, labels) in val) cm.Update(model.forward(images), labels);
/// var m = SegmentationMetrics.From(cm);   // m.MeanIoU, m.Classes[c].IoU, ...
/// </code></example>
public sealed class ConfusionMatrix : IDisposable
{
    Tensor? counts;           // [C, C] int64 on the device of the first update
    Tensor? imageIoUSum;      // scalar float64
    long imageCount;

    /// <summary>Creates an empty matrix for <paramref name="numClasses"/> classes.</summary>
    /// <param name="numClasses">Number of classes C (labels 0..C-1).</param>
    /// <param name="ignoreIndex">Label value that marks pixels to leave out (255 as in VOC and Cityscapes).</param>
    public ConfusionMatrix(int numClasses, long ignoreIndex = 255)
    {
        if (numClasses < 1) throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, "numClasses must be at least 1.");
        if (ignoreIndex >= 0 && ignoreIndex < numClasses)
            throw new ArgumentException($"ignoreIndex {ignoreIndex} is a valid class index (numClasses = {numClasses}).", nameof(ignoreIndex));
        NumClasses = numClasses;
        IgnoreIndex = ignoreIndex;
    }

    /// <summary>Number of classes C.</summary>
    public int NumClasses { get; }

    /// <summary>Label value left out of every count.</summary>
    public long IgnoreIndex { get; }

    /// <summary>Number of images seen that had at least one labelled pixel (the denominator of image mIoU).</summary>
    public long ImageCount => imageCount;

    /// <summary>Sum over images of each image's mean IoU; <see cref="ImageCount"/> images contributed.</summary>
    public double ImageIoUSum => imageIoUSum is null ? 0.0 : imageIoUSum.item<double>();

    /// <summary>
    /// Adds a batch. <paramref name="predictions"/> are class indices shaped like <paramref name="labels"/>
    /// ([B, H, W] or [H, W]) or logits/scores with one extra class dimension at dim 1 ([B, C, H, W]), from which
    /// the arg-max is taken. Labels must lie in [0, C) or equal <see cref="IgnoreIndex"/>.
    /// </summary>
    /// <exception cref="ArgumentException">Shapes disagree, or a label or prediction is out of range.</exception>
    public void Update(Tensor predictions, Tensor labels)
    {
        ArgumentNullException.ThrowIfNull(predictions);
        ArgumentNullException.ThrowIfNull(labels);
        using var scope = NewDisposeScope();
        var pred = predictions;
        if (pred.dim() == labels.dim() + 1)
        {
            if (pred.shape[1] != NumClasses)
                throw new ArgumentException($"scores {Shape(pred)} have {pred.shape[1]} channels at dim 1 but the matrix has {NumClasses} classes.", nameof(predictions));
            pred = pred.argmax(1);
        }
        if (!pred.shape.SequenceEqual(labels.shape))
            throw new ArgumentException($"predictions {Shape(predictions)} and labels {Shape(labels)} do not match: expected predictions shaped like the labels, or with one extra class dimension at dim 1.", nameof(predictions));
        if (pred.device_type != labels.device_type || pred.device_index != labels.device_index)
            throw new ArgumentException($"predictions are on {pred.device} but labels on {labels.device}.", nameof(predictions));

        var batched = labels.dim() >= 3;
        var lab = (batched ? labels : labels.unsqueeze(0)).flatten(1).to(ScalarType.Int64);
        var prd = (batched ? pred : pred.unsqueeze(0)).flatten(1).to(ScalarType.Int64);
        long b = lab.shape[0], c = NumClasses;

        var valid = lab.ne(IgnoreIndex);
        var labelled = lab.masked_select(valid);
        var predicted = prd.masked_select(valid);
        if (labelled.numel() > 0)
        {
            var bad = labelled.lt(0).logical_or(labelled.ge(c)).any().item<bool>();
            if (bad)
                throw new ArgumentException($"labels hold values outside [0, {c}) other than the ignore index {IgnoreIndex} (min {labelled.min().item<long>()}, max {labelled.max().item<long>()}).", nameof(labels));
            var badPred = predicted.lt(0).logical_or(predicted.ge(c)).any().item<bool>();
            if (badPred)
                throw new ArgumentException($"predictions hold class indices outside [0, {c}) (min {predicted.min().item<long>()}, max {predicted.max().item<long>()}).", nameof(predictions));
        }

        // One bincount over (image, label, prediction) triples gives every image's own matrix.
        var image = arange(b, device: lab.device).unsqueeze(1).expand(b, lab.shape[1]).masked_select(valid);
        var perImage = (image * (c * c) + labelled * c + predicted).bincount(null, b * c * c).view(b, c, c);
        var batchCounts = perImage.sum(dim: 0); // a bare sum(0) would bind to sum(ScalarType)
        if (counts is null)
        {
            // The running state outlives every caller's dispose scope: detach it from all of them.
            counts = batchCounts.detach().clone().DetachFromDisposeScope();
            imageIoUSum = zeros(Array.Empty<long>(), ScalarType.Float64, lab.device).DetachFromDisposeScope();
        }
        else
        {
            counts.add_(batchCounts.to(counts.device));
        }

        var (iou, present) = IoU(perImage.to(ScalarType.Float64));
        var hasPixels = valid.any(1);
        var perImageMean = (iou * present).sum(1) / present.sum(1).clamp_min(1.0);
        imageIoUSum!.add_(perImageMean.masked_select(hasPixels).sum().to(imageIoUSum.device));
        imageCount += hasPixels.sum().item<long>();
    }

    /// <summary>IoU per class of [.., C, C] matrices, and a 0/1 mask of classes with a non-empty union.</summary>
    static (Tensor IoU, Tensor Present) IoU(Tensor m)
    {
        var tp = m.diagonal(0, -2, -1);
        var union = m.sum(-1) + m.sum(-2) - tp;
        var present = union.gt(0).to(ScalarType.Float64);
        return (tp / union.clamp_min(1.0), present);
    }

    /// <summary>The accumulated counts as a [C, C] array (row: ground truth, column: prediction), copied to the CPU.</summary>
    public long[,] ToArray()
    {
        var result = new long[NumClasses, NumClasses];
        if (counts is null) return result;
        using var cpu = counts.cpu();
        var flat = cpu.data<long>().ToArray();
        for (var i = 0; i < NumClasses; i++)
            for (var j = 0; j < NumClasses; j++)
                result[i, j] = flat[i * NumClasses + j];
        return result;
    }

    /// <summary>Adds another matrix's counts (for example from another device or worker) into this one.</summary>
    public void Merge(ConfusionMatrix other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (other.NumClasses != NumClasses)
            throw new ArgumentException($"cannot merge a {other.NumClasses}-class matrix into a {NumClasses}-class one.", nameof(other));
        if (other.counts is null) return;
        if (counts is null)
        {
            counts = other.counts.clone().DetachFromDisposeScope();
            imageIoUSum = other.imageIoUSum!.clone().DetachFromDisposeScope();
        }
        else
        {
            counts.add_(other.counts.to(counts.device));
            imageIoUSum!.add_(other.imageIoUSum!.to(imageIoUSum.device));
        }
        imageCount += other.imageCount;
    }

    /// <summary>Forgets everything accumulated so far.</summary>
    public void Reset()
    {
        counts?.Dispose();
        imageIoUSum?.Dispose();
        counts = null;
        imageIoUSum = null;
        imageCount = 0;
    }

    /// <inheritdoc />
    public void Dispose() => Reset();

    static string Shape(Tensor t) => "[" + string.Join(", ", t.shape) + "]";
}
