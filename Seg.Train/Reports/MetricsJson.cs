using System.Text.Json;
using System.Text.Json.Nodes;
using Seg.Core.IO;
using Seg.Core.Metrics;

namespace Seg.Train.Reports;

/// <summary>
/// <c>metrics.json</c>: <c>{"mIoU", "aAcc", "mAcc", "mDice", "image_mIoU", "mIoU_I", "mIoU_C", "mIoU_I_worst5",
/// "mIoU_I_worst10", "mIoU_C_worst10", "iterations", "images", "nonfinite_pixels", "skipped_samples", "skipped_files",
/// "classes": [{"name", "iou", "acc", "dice", ...}]}</c>,
/// fractions in [0, 1]. A class with an empty union has <c>"iou": null</c> and <c>"excluded": true</c> (it is left out
/// of the means). <c>mIoU</c> is the dataset-level mIoU^D; <c>mIoU_I</c>, <c>mIoU_C</c> and the worst-case fields are
/// those of <see cref="PerImageScores"/> (worst 5 % and 10 % of the images). <c>"run"</c> describes the run
/// (<see cref="RunInfo.ToJson"/>) where it is known.
/// </summary>
public static class MetricsJson
{
    /// <summary>The JSON object for <paramref name="metrics"/> after <paramref name="iterations"/> training steps.</summary>
    /// <param name="metrics">The scores.</param>
    /// <param name="iterations">Training steps behind them.</param>
    /// <param name="run">What produced them (config, device, data), or null.</param>
    /// <param name="nonFinitePixels">Pixels scored although their output was NaN or infinite (<c>eval.allow_nonfinite</c>).</param>
    /// <param name="skipped">Samples left out by <c>data.on_bad_sample: skip</c>.</param>
    public static JsonObject ToJson(SegmentationMetrics metrics, long iterations, RunInfo? run = null, long nonFinitePixels = 0, SkippedSamples? skipped = null)
    {
        skipped ??= SkippedSamples.None;
        var classes = new JsonArray();
        foreach (var c in metrics.Classes)
            classes.Add(new JsonObject
            {
                ["name"] = c.Name,
                ["iou"] = c.IoU,
                ["acc"] = c.Accuracy,
                ["dice"] = c.Dice,
                ["precision"] = c.Precision,
                ["recall"] = c.Recall,
                ["excluded"] = c.IoU is null,
            });
        return new JsonObject
        {
            ["mIoU"] = metrics.MeanIoU,
            ["aAcc"] = metrics.PixelAccuracy,
            ["mAcc"] = metrics.MeanAccuracy,
            ["mDice"] = metrics.MeanDice,
            ["image_mIoU"] = metrics.MeanIoUPerImageGtOrPredicted,
            ["mIoU_I"] = metrics.MeanIoUPerImage,
            ["mIoU_C"] = metrics.MeanIoUPerClass,
            ["mIoU_I_worst5"] = metrics.WorstMeanIoUPerImage(0.05),
            ["mIoU_I_worst10"] = metrics.WorstMeanIoUPerImage(0.10),
            ["mIoU_C_worst10"] = metrics.WorstMeanIoUPerClass(0.10),
            ["iterations"] = iterations,
            ["images"] = metrics.Images,
            ["nonfinite_pixels"] = nonFinitePixels,
            ["skipped_samples"] = skipped.Count,
            ["skipped_files"] = new JsonArray(skipped.First.Select(m => (JsonNode?)JsonValue.Create(m)).ToArray()),
            ["classes"] = classes,
            ["run"] = run?.ToJson(),
        };
    }

    /// <summary>Writes <c>metrics.json</c>.</summary>
    public static void Write(string path, SegmentationMetrics metrics, long iterations, RunInfo? run = null, long nonFinitePixels = 0, SkippedSamples? skipped = null)
    {
        AtomicFile.WriteAllText(path, ToJson(metrics, iterations, run, nonFinitePixels, skipped).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }
}
