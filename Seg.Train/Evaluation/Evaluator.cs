using System.Diagnostics;
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
}

/// <summary>Runs a model over an evaluation loader and scores it with a <see cref="ConfusionMatrix"/>.</summary>
public static class Evaluator
{
    /// <summary>
    /// Predicts every batch of <paramref name="loader"/>'s evaluation pass (in eval mode, without gradients) and
    /// accumulates the confusion matrix on the model's device; keeps the first <c>eval.samples</c> images.
    /// </summary>
    public static EvalResult Evaluate(nn.Module<Tensor, Tensor> model, SegmentationLoader loader, EvalConfig eval,
        IReadOnlyList<string> classNames, long ignoreIndex, CancellationToken ct = default, Action<int, int>? progress = null)
    {
        var watch = Stopwatch.StartNew();
        var wasTraining = model.training;
        model.eval();
        var samples = new List<EvalSample>();
        var ids = new List<string>();
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
                    ids.AddRange(batch.Ids);
                    images += batch.Count;
                }
                progress?.Invoke(++batchIndex, loader.EvalBatches);
            }
        }
        finally
        {
            if (wasTraining) model.train();
        }
        return new EvalResult(SegmentationMetrics.From(matrix, classNames), matrix.ToArray(), samples, watch.Elapsed, images)
            { ImageIds = ids, NonFinitePixels = nonFinite };
    }

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
}
