using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Metrics;

/// <summary>
/// Accumulates a segmentation confusion matrix (rows: ground truth, columns: prediction) over many batches, on
/// the device of the tensors it is given. Beside the dataset-level matrix it keeps, for every image (dimension 0 of
/// what <see cref="Update"/> receives), the true-positive, false-positive and false-negative pixel count of each
/// class: O(images × classes) numbers, from which <see cref="SegmentationMetrics"/> derives the per-image and
/// per-class mIoU (mIoU^I, mIoU^C) and their worst-case variants. Predictions themselves are not kept. Pixels whose
/// label equals <see cref="IgnoreIndex"/> count nowhere.
/// </summary>
/// <remarks>
/// <see cref="Update"/> never waits for the device: counts are scattered with <c>index_add_</c> into fixed-size
/// buffers (no <c>masked_select</c> or <c>bincount</c>, whose output sizes need the host). On the CPU, labels and
/// predictions outside [0, C) are rejected by <see cref="Update"/> itself; on another device the range check runs
/// on the device too and its verdict is read, and thrown, when the results are read (<see cref="ToArray"/>,
/// <see cref="ToImageStatistics"/>, <see cref="SegmentationMetrics.From(ConfusionMatrix, IReadOnlyList{string})"/>).
/// </remarks>
/// <example><code>
/// var cm = new ConfusionMatrix(numClasses: 21);
/// foreach (var (images, labels) in val) cm.Update(model.forward(images), labels);
/// var m = SegmentationMetrics.From(cm);   // m.MeanIoU, m.MeanIoUPerImage, m.WorstMeanIoUPerImage(0.1), ...
/// </code></example>
public sealed class ConfusionMatrix : IDisposable
{
    // Columns of the per-image statistics, in the official code's order.
    const int Tp = 0, Fp = 1, Fn = 2;

    Tensor? counts;      // [C, C] int64 on the device of the first update
    Tensor? perImage;    // [capacity, 3, C] int64: tp, fp, fn of each class in each image seen; rows [0, rows) used
    long rows;
    Tensor? ranges;      // [4] int64: min and max labelled label, min and max prediction at labelled pixels

    /// <summary>Creates an empty matrix for <paramref name="numClasses"/> classes.</summary>
    /// <param name="numClasses">Number of classes C (labels 0..C-1).</param>
    /// <param name="ignoreIndex">Label value that marks pixels to leave out (255 as in VOC and Cityscapes).</param>
    public ConfusionMatrix(int numClasses, long ignoreIndex = 255)
    {
        if (numClasses < 1 || numClasses > MaxClasses)
            throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, $"numClasses must lie in [1, {MaxClasses}] (the matrix is C×C per image).");
        Losses.IgnoreIndexRule.Check(ignoreIndex, numClasses);
        NumClasses = numClasses;
        IgnoreIndex = ignoreIndex;
    }

    /// <summary>The most classes a matrix takes: C×C int64 counts per image of a batch, 2 GiB each at the bound.</summary>
    public const int MaxClasses = 1 << 14;

    /// <summary>Number of classes C.</summary>
    public int NumClasses { get; }

    /// <summary>Label value left out of every count.</summary>
    public long IgnoreIndex { get; }

    /// <summary>Tests set this to run, on the CPU, the range check that other devices defer to the first read.</summary>
    internal bool DeferRangeCheck { get; init; }

    /// <summary>Number of images seen that had at least one labelled pixel (the images that are scored).</summary>
    public long ImageCount => ToImageStatistics().ScoredImages;

    /// <summary>
    /// Sum over scored images of each image's mean IoU over the classes present in its ground truth or prediction
    /// (the <c>image_mIoU</c> of the reports); <see cref="ImageCount"/> images contributed.
    /// </summary>
    public double ImageIoUSum => ToImageStatistics().UnionMeanIoUSum();

    /// <summary>
    /// Adds a batch. <paramref name="predictions"/> are class indices shaped like <paramref name="labels"/>
    /// ([B, H, W], or [H, W] for one image) or logits/scores with one extra class dimension at dim 1
    /// ([B, C, H, W]), from which the arg-max is taken. Labels must lie in [0, C) or equal <see cref="IgnoreIndex"/>.
    /// </summary>
    /// <exception cref="ArgumentException">Shapes or devices disagree, or (on the CPU) a label or prediction is out of range.</exception>
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

        if (labels.NumberOfElements == 0) return;   // an empty batch (B = 0, or no pixels) adds nothing to count
        var batched = labels.dim() >= 3;
        var lab = (batched ? labels : labels.unsqueeze(0)).flatten(1).to(ScalarType.Int64);
        var prd = (batched ? pred : pred.unsqueeze(0)).flatten(1).to(ScalarType.Int64);
        long b = lab.shape[0], c = NumClasses;
        var device = lab.device;

        var valid = lab.ne(IgnoreIndex);
        var batchRanges = Ranges(lab, prd, valid);
        if (device.type == DeviceType.CPU && !DeferRangeCheck) ThrowIfOutOfRange(batchRanges); // free here: the CPU has no queue to stall

        // One scatter of (image, label, prediction) triples gives every image's own C×C matrix. Ignored pixels add
        // 0; clamping keeps every index inside the buffer even for out-of-range values (which are reported anyway).
        var cell = arange(b, device: device).unsqueeze(1) * (c * c) + lab.clamp(0, c - 1) * c + prd.clamp(0, c - 1);
        var matrices = zeros(b * c * c, ScalarType.Int64, device)
            .index_add_(0, cell.flatten(), valid.flatten().to(ScalarType.Int64), 1).view(b, c, c);

        var tp = matrices.diagonal(0, 1, 2);
        var stats = stack([tp, matrices.sum(1) - tp, matrices.sum(2) - tp], 1); // [B, 3, C]: tp, fp, fn
        Append(stats, matrices.sum(dim: 0), batchRanges); // a bare sum(0) would bind to sum(ScalarType)
    }

    // [4]: min/max of the labels and of the predictions over labelled pixels (±long.MaxValue when there are none).
    static Tensor Ranges(Tensor lab, Tensor prd, Tensor valid)
    {
        var high = tensor(long.MaxValue, device: lab.device);
        var low = tensor(long.MinValue, device: lab.device);
        return stack([
            lab.where(valid, high).min(), lab.where(valid, low).max(),
            prd.where(valid, high).min(), prd.where(valid, low).max()]);
    }

    void ThrowIfOutOfRange(Tensor r)
    {
        var v = r.cpu().data<long>().ToArray();
        if (v[0] > v[1]) return; // no labelled pixel
        long c = NumClasses;
        if (v[0] < 0 || v[1] >= c)
            throw new ArgumentException($"labels hold values outside [0, {c}) other than the ignore index {IgnoreIndex} (min {v[0]}, max {v[1]}).", "labels");
        if (v[2] < 0 || v[3] >= c)
            throw new ArgumentException($"predictions hold class indices outside [0, {c}) (min {v[2]}, max {v[3]}).", "predictions");
    }

    void Append(Tensor stats, Tensor batchCounts, Tensor batchRanges)
    {
        long b = stats.shape[0];
        if (counts is null)
        {
            // The running state outlives every caller's dispose scope: detach it from all of them.
            counts = batchCounts.clone().DetachFromDisposeScope();
            ranges = batchRanges.clone().DetachFromDisposeScope();
        }
        else
        {
            // Later batches may come from another device: the state stays where it started.
            counts.add_(batchCounts.to(counts.device));
            var r = batchRanges.to(ranges!.device);
            ranges.copy_(stack([ranges[0].minimum(r[0]), ranges[1].maximum(r[1]), ranges[2].minimum(r[2]), ranges[3].maximum(r[3])]));
        }
        Reserve(rows + b, counts.device);
        perImage!.narrow(0, rows, b).copy_(stats);
        rows += b;
    }

    // Grows the per-image buffer geometrically, so that N images cost O(N) copies in all.
    void Reserve(long needed, Device device)
    {
        var capacity = perImage?.shape[0] ?? 0;
        if (needed <= capacity) return;
        var grown = zeros([Math.Max(needed, Math.Max(64, 2 * capacity)), 3, NumClasses], ScalarType.Int64, device);
        if (perImage is not null)
        {
            grown.narrow(0, 0, rows).copy_(perImage.narrow(0, 0, rows));
            perImage.Dispose();
        }
        perImage = grown.DetachFromDisposeScope();
    }

    /// <summary>The accumulated counts as a [C, C] array (row: ground truth, column: prediction), copied to the CPU.</summary>
    /// <exception cref="ArgumentException">An update on a non-CPU device held a label or prediction out of range.</exception>
    public long[,] ToArray()
    {
        var result = new long[NumClasses, NumClasses];
        if (counts is null) return result;
        CheckRanges();
        using var cpu = counts.cpu();
        var flat = cpu.data<long>().ToArray();
        for (var i = 0; i < NumClasses; i++)
            for (var j = 0; j < NumClasses; j++)
                result[i, j] = flat[i * NumClasses + j];
        return result;
    }

    /// <summary>
    /// The per-image statistics of every image given to <see cref="Update"/>, in order (images without a labelled
    /// pixel included, see <see cref="Metrics.ImageStatistics.Scored"/>), copied to the CPU in one transfer of
    /// O(images × classes) numbers.
    /// </summary>
    /// <exception cref="ArgumentException">An update on a non-CPU device held a label or prediction out of range.</exception>
    public ImageStatistics ToImageStatistics()
    {
        if (perImage is null) return new ImageStatistics(new long[0, NumClasses], new long[0, NumClasses], new long[0, NumClasses]);
        CheckRanges();
        using var cpu = perImage.narrow(0, 0, rows).cpu();
        var flat = cpu.data<long>().ToArray();
        var n = (int)rows;
        long[,] tp = new long[n, NumClasses], fp = new long[n, NumClasses], fn = new long[n, NumClasses];
        for (var i = 0; i < n; i++)
            for (var k = 0; k < NumClasses; k++)
            {
                var at = 3L * i * NumClasses + k; // row-major [N, 3, C]
                tp[i, k] = flat[at + Tp * NumClasses];
                fp[i, k] = flat[at + Fp * NumClasses];
                fn[i, k] = flat[at + Fn * NumClasses];
            }
        return new ImageStatistics(tp, fp, fn, owned: true);
    }

    // Reads the device-side range check (a no-op for CPU updates, which were checked as they came).
    void CheckRanges()
    {
        if (ranges is not null) ThrowIfOutOfRange(ranges);
    }

    /// <summary>
    /// Adds another matrix's counts and per-image statistics (for example from another device or worker) into
    /// this one; the other matrix's images come after this one's.
    /// </summary>
    public void Merge(ConfusionMatrix other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (other.NumClasses != NumClasses)
            throw new ArgumentException($"cannot merge a {other.NumClasses}-class matrix into a {NumClasses}-class one.", nameof(other));
        if (other.counts is null) return;
        using var scope = NewDisposeScope();
        var device = counts?.device ?? other.counts.device;
        Append(other.perImage!.narrow(0, 0, other.rows).to(device), other.counts.to(device), other.ranges!.to(device));
    }

    /// <summary>Forgets everything accumulated so far.</summary>
    public void Reset()
    {
        counts?.Dispose();
        perImage?.Dispose();
        ranges?.Dispose();
        counts = perImage = ranges = null;
        rows = 0;
    }

    /// <inheritdoc />
    public void Dispose() => Reset();

    static string Shape(Tensor t) => "[" + string.Join(", ", t.shape) + "]";
}
