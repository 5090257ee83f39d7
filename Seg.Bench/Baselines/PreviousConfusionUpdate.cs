using static TorchSharp.torch;

namespace Seg.Bench.Baselines;

/// <summary>
/// The body of <c>ConfusionMatrix.Update</c> before per-image statistics existed (commit 01ae9bb), the baseline the
/// current update is measured against: ignored pixels dropped with <c>masked_select</c>, range checks read on the
/// host, one <c>bincount</c> over (image, label, prediction), and the per-image mean IoU summed on the device with
/// the image count read back every batch. Benchmark only; shape checks left out.
/// </summary>
public sealed class PreviousConfusionUpdate(int numClasses, long ignoreIndex = 255)
{
    Tensor? counts, imageIoUSum;
    long imageCount;

    /// <summary>Adds a batch of class indices [B, H, W] with labels [B, H, W].</summary>
    public void Update(Tensor predictions, Tensor labels)
    {
        using var scope = NewDisposeScope();
        var lab = labels.flatten(1);
        var prd = predictions.flatten(1);
        long b = lab.shape[0], c = numClasses;
        var valid = lab.ne(ignoreIndex);
        var labelled = lab.masked_select(valid);
        var predicted = prd.masked_select(valid);
        if (labelled.lt(0).logical_or(labelled.ge(c)).any().item<bool>()) throw new ArgumentException("labels out of range");
        if (predicted.lt(0).logical_or(predicted.ge(c)).any().item<bool>()) throw new ArgumentException("predictions out of range");
        var image = arange(b, device: lab.device).unsqueeze(1).expand(b, lab.shape[1]).masked_select(valid);
        var perImage = (image * (c * c) + labelled * c + predicted).bincount(null, b * c * c).view(b, c, c);
        var batchCounts = perImage.sum(dim: 0);
        if (counts is null)
        {
            counts = batchCounts.clone().DetachFromDisposeScope();
            imageIoUSum = zeros(Array.Empty<long>(), ScalarType.Float64, lab.device).DetachFromDisposeScope();
        }
        else counts.add_(batchCounts);
        var m = perImage.to(ScalarType.Float64);
        var tp = m.diagonal(0, -2, -1);
        var union = m.sum(-1) + m.sum(-2) - tp;
        var present = union.gt(0).to(ScalarType.Float64);
        var perImageMean = (tp / union.clamp_min(1.0) * present).sum(1) / present.sum(1).clamp_min(1.0);
        var hasPixels = valid.any(1);
        imageIoUSum!.add_(perImageMean.masked_select(hasPixels).sum());
        imageCount += hasPixels.sum().item<long>();
    }

    /// <summary>The accumulated dataset-level counts, read back (forces the work to finish).</summary>
    public long Total() => counts is null ? 0 : counts.sum().item<long>() + imageCount;
}
