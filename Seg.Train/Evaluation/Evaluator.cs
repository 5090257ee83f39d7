using System.Diagnostics;
using Seg.Core.Distributed;
using Seg.Core.Metrics;
using Seg.Data;
using Seg.Train.Config;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Train.Evaluation;

/// <summary>One evaluated image kept for the report: image [3, H, W], ground truth and prediction [H, W] (CPU).</summary>
public sealed record EvalSample(string Id, Tensor Image, Tensor Label, Tensor Prediction);

/// <summary>The outcome of one pass over a split.</summary>
public sealed record EvalResult(SegmentationMetrics Metrics, long[,] Counts, IReadOnlyList<EvalSample> Samples, TimeSpan Elapsed, int Images)
{
    /// <summary>Id of every evaluated image, in the order of <see cref="PerImageScores.PerImage"/> (for the worst-images table).</summary>
    public IReadOnlyList<string> ImageIds { get; init; } = [];

    /// <summary>Pixels whose output was NaN or infinite (non-zero only with <c>eval.allow_nonfinite</c>; otherwise
    /// such a pixel stops the evaluation, see <see cref="NonFiniteOutputException"/>).</summary>
    public long NonFinitePixels { get; init; }

    /// <summary>The lowest-scoring images (mIoU^I score), worst first, up to <see cref="Evaluator.WorstKept"/>: what
    /// the report shows beside the first samples.</summary>
    public IReadOnlyList<(EvalSample Sample, double Score)> Worst { get; init; } = [];

    /// <summary>Frees the kept samples' tensors.</summary>
    public void DisposeSamples()
    {
        foreach (var s in Samples.Concat(Worst.Select(w => w.Sample))) { s.Image.Dispose(); s.Label.Dispose(); s.Prediction.Dispose(); }
    }
}

/// <summary>Runs a model over an evaluation loader and scores it with a <see cref="ConfusionMatrix"/>.</summary>
public static class Evaluator
{
    /// <summary>
    /// Predicts every batch of <paramref name="loader"/>'s evaluation pass (in eval mode, without gradients) and
    /// accumulates the confusion matrix on the model's device; keeps the first <c>eval.samples</c> images and the
    /// <see cref="WorstKept"/> lowest-scoring ones. In a data-parallel job (<paramref name="group"/> of several ranks,
    /// the loader sharded over them) each rank predicts its share and the counts and per-image statistics are
    /// all-reduced, so every rank gets the metrics of one process evaluating the whole split; the kept samples are
    /// then this rank's.
    /// </summary>
    public static EvalResult Evaluate(nn.Module<Tensor, Tensor> model, SegmentationLoader loader, EvalConfig eval,
        IReadOnlyList<string> classNames, long ignoreIndex, CancellationToken ct = default, Action<int, int>? progress = null,
        ProcessGroup? group = null)
    {
        var watch = Stopwatch.StartNew();
        var wasTraining = model.training;
        model.eval();
        var samples = new List<EvalSample>();
        var worst = new List<(EvalSample Sample, double Score)>();
        var ids = new List<string>();
        var indices = new List<int>();
        using var matrix = new ConfusionMatrix(classNames.Count, ignoreIndex);
        var images = 0;
        var batchIndex = 0;
        long nonFinite = 0;
        try
        {
            using var _ = no_grad();
            foreach (var batch in loader.Epoch(0, ct))
            {
                using (batch)
                using (var scope = NewDisposeScope())
                {
                    var probabilities = Inference.Probabilities(model, batch.Images, eval);
                    nonFinite += CheckFinite(probabilities, batch.Ids, eval.AllowNonFinite);
                    var predictions = probabilities.argmax(1);
                    matrix.Update(predictions, batch.Labels);
                    for (var i = 0; i < batch.Count && samples.Count < eval.Samples; i++)
                        samples.Add(new EvalSample(batch.Ids[i],
                            batch.Images[i].cpu().DetachFromDisposeScope(),
                            batch.Labels[i].cpu().DetachFromDisposeScope(),
                            predictions[i].cpu().DetachFromDisposeScope()));
                    KeepWorst(worst, batch, predictions, classNames.Count, ignoreIndex);
                    ids.AddRange(batch.Ids);
                    indices.AddRange(batch.Indices);
                    images += batch.Count;
                }
                progress?.Invoke(++batchIndex, loader.RankEvalBatches);
            }
        }
        finally
        {
            if (wasTraining) model.train();
        }
        if (group is not { Size: > 1 })
            return new EvalResult(SegmentationMetrics.From(matrix, classNames), matrix.ToArray(), samples, watch.Elapsed, images)
                { ImageIds = ids, Worst = worst, NonFinitePixels = nonFinite };
        var (counts, statistics, allIds) = Combine(group, matrix, indices, ids, loader.Dataset.Count, classNames.Count);
        return new EvalResult(SegmentationMetrics.From(counts, statistics, classNames), counts, samples, watch.Elapsed, allIds.Count)
            { ImageIds = allIds, Worst = worst, NonFinitePixels = nonFinite };   // this rank's count
    }

    /// <summary>How many of the lowest-scoring images an evaluation keeps for the report.</summary>
    public const int WorstKept = 4;

    /// <summary>Counts the pixels of <paramref name="probabilities"/> [B, C, H, W] whose scores are not all finite (one
    /// read from the device per batch); throws <see cref="NonFiniteOutputException"/> naming the first such image
    /// unless <paramref name="allow"/>.</summary>
    public static long CheckFinite(Tensor probabilities, IReadOnlyList<string> ids, bool allow)
    {
        var counts = NonFiniteOutputException.CountPerImage(probabilities);
        for (var i = 0; i < counts.Length && !allow; i++)
            if (counts[i] > 0) throw new NonFiniteOutputException(ids[i], counts[i], probabilities.shape[2] * probabilities.shape[3]);
        return counts.Sum();
    }

    // Each image's score as in mIoU^I (the same per-image statistics, from a matrix of this batch alone); an image
    // worse than the best of those kept replaces it. Ties keep the earlier image, as the worst-images table does.
    static void KeepWorst(List<(EvalSample Sample, double Score)> worst, SegmentationBatch batch, Tensor predictions, int classes, long ignoreIndex)
    {
        using var batchMatrix = new ConfusionMatrix(classes, ignoreIndex);
        batchMatrix.Update(predictions, batch.Labels);
        var scores = PerImageScores.From(batchMatrix.ToImageStatistics()).PerImage;
        for (var i = 0; i < batch.Count && i < scores.Count; i++)
        {
            if (scores[i] is not { } score) continue;
            if (worst.Count == WorstKept)
            {
                if (score >= worst[^1].Score) continue;
                var evicted = worst[^1].Sample;
                evicted.Image.Dispose(); evicted.Label.Dispose(); evicted.Prediction.Dispose();
                worst.RemoveAt(worst.Count - 1);
            }
            var kept = new EvalSample(batch.Ids[i], batch.Images[i].cpu().DetachFromDisposeScope(),
                batch.Labels[i].cpu().DetachFromDisposeScope(), predictions[i].cpu().DetachFromDisposeScope());
            var at = worst.FindIndex(w => w.Score > score);
            worst.Insert(at < 0 ? worst.Count : at, (kept, score));
        }
    }

    // Sums the ranks' shares: the [C, C] counts directly; the per-image rows after placing each at its dataset
    // index in a zero [N, 3, C] table (every image is evaluated by exactly one rank); the ids by gathering them.
    static (long[,] Counts, ImageStatistics Statistics, List<string> Ids) Combine(ProcessGroup group, ConfusionMatrix matrix,
        List<int> indices, List<string> ids, int datasetCount, int classes)
    {
        var local = matrix.ToArray();
        var counts = new long[classes * classes];
        Buffer.BlockCopy(local, 0, counts, 0, counts.Length * sizeof(long));
        group.AllReduce<long>(counts);
        var result = new long[classes, classes];
        Buffer.BlockCopy(counts, 0, result, 0, counts.Length * sizeof(long));

        var mine = matrix.ToImageStatistics();
        var table = new long[(long)datasetCount * 3 * classes];
        for (var row = 0; row < indices.Count; row++)
            for (var c = 0; c < classes; c++)
            {
                long at = (long)indices[row] * 3 * classes + c;
                table[at] = mine.TruePositives(row, c);
                table[at + classes] = mine.FalsePositives(row, c);
                table[at + 2 * classes] = mine.FalseNegatives(row, c);
            }
        group.AllReduce<long>(table);
        long[,] tp = new long[datasetCount, classes], fp = new long[datasetCount, classes], fn = new long[datasetCount, classes];
        for (var i = 0; i < datasetCount; i++)
            for (var c = 0; c < classes; c++)
            {
                long at = (long)i * 3 * classes + c;
                (tp[i, c], fp[i, c], fn[i, c]) = (table[at], table[at + classes], table[at + 2 * classes]);
            }

        var allIds = new string[datasetCount];
        var text = string.Join('\n', indices.Select((index, row) => $"{index}\t{ids[row]}"));
        foreach (var share in group.AllGather(System.Text.Encoding.UTF8.GetBytes(text)))
            foreach (var line in System.Text.Encoding.UTF8.GetString(share).Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                var tab = line.IndexOf('\t');
                allIds[int.Parse(line[..tab], System.Globalization.CultureInfo.InvariantCulture)] = line[(tab + 1)..];
            }
        return (result, new ImageStatistics(tp, fp, fn), [.. allIds]);
    }
}
