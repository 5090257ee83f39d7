namespace Seg.Core.Metrics;

/// <summary>
/// The usual semantic-segmentation scores, computed from a <see cref="ConfusionMatrix"/>. Dataset-level IoU sums
/// intersections and unions over the whole split before dividing; classes with an empty union are excluded from
/// the means (their <see cref="ClassMetrics.IoU"/> is null). All scores are fractions in [0, 1].
/// </summary>
/// <param name="Classes">Per-class scores, indexed by class.</param>
/// <param name="MeanIoU">mIoU: mean of the defined per-class IoUs (0 when none is defined).</param>
/// <param name="PixelAccuracy">Pixel accuracy, shown as aAcc (MMSegmentation's name: all-pixel accuracy) in the CLI,
/// the report and metrics.json: correctly classified labelled pixels / labelled pixels.</param>
/// <param name="MeanAccuracy">mAcc: mean per-class recall over classes present in the ground truth.</param>
/// <param name="MeanDice">mDice: mean of the defined per-class Dice scores.</param>
/// <param name="MeanIoUPerImageGtOrPredicted">"image mIoU" in the CLI and report (formerly <c>ImageMeanIoU</c>): mean over images of each image's mean IoU over the classes present in its
/// ground truth or its prediction; 0 when no image had a labelled pixel. It differs from
/// <see cref="MeanIoUPerImage"/> (mIoU^I), which averages only the classes of the image's ground truth and, with two
/// classes, scores the foreground alone.</param>
/// <param name="LabelledPixels">Number of labelled (not ignored) pixels seen.</param>
/// <param name="Images">Number of images that contributed to <paramref name="MeanIoUPerImageGtOrPredicted"/>.</param>
public sealed record SegmentationMetrics(
    IReadOnlyList<ClassMetrics> Classes, double MeanIoU, double PixelAccuracy, double MeanAccuracy,
    double MeanDice, double MeanIoUPerImageGtOrPredicted, long LabelledPixels, long Images)
{
    /// <summary>
    /// Per-image and per-class scores behind <see cref="MeanIoUPerImage"/>, <see cref="MeanIoUPerClass"/> and the
    /// worst-case variants (empty, so all 0, for scores made from dataset-level counts alone).
    /// </summary>
    public PerImageScores PerImage { get; init; } = PerImageScores.Empty;

    /// <summary>The former name of <see cref="MeanIoUPerImageGtOrPredicted"/>, kept for one release: next to
    /// <see cref="MeanIoUPerImage"/> (mIoU^I, a different score) it misled.</summary>
    [Obsolete("Renamed MeanIoUPerImageGtOrPredicted: the image mIoU over the classes of each image's ground truth or prediction, not mIoU^I (MeanIoUPerImage). This alias goes in the next release.")]
    [System.ComponentModel.EditorBrowsable(System.ComponentModel.EditorBrowsableState.Never)]
    public double ImageMeanIoU => MeanIoUPerImageGtOrPredicted;

    /// <summary>mIoU^I: the mean over images of each image's mIoU over the classes of its ground truth (see <see cref="PerImageScores"/>).</summary>
    public double MeanIoUPerImage => PerImage.MeanPerImage;

    /// <summary>mIoU^C: the mean over classes of each class's mean IoU over the images that contain it (see <see cref="PerImageScores"/>).</summary>
    public double MeanIoUPerClass => PerImage.MeanPerClass;

    /// <summary>mIoU^I_q: the mean of the max(1, ⌊q·N⌋) lowest image scores; <paramref name="q"/> in (0, 1], 0.05 = the worst 5 % of images.</summary>
    public double WorstMeanIoUPerImage(double q) => PerImage.WorstPerImage(q);

    /// <summary>mIoU^C_q: per class the mean of its max(1, ⌊q·N_c⌋) lowest IoUs over the images that contain it, then the mean over classes.</summary>
    public double WorstMeanIoUPerClass(double q) => PerImage.WorstPerClass(q);

    /// <summary>Scores from an accumulated matrix; <paramref name="classNames"/> names the classes (optional).</summary>
    public static SegmentationMetrics From(ConfusionMatrix matrix, IReadOnlyList<string>? classNames = null)
    {
        ArgumentNullException.ThrowIfNull(matrix);
        return From(matrix.ToArray(), matrix.ToImageStatistics(), classNames);
    }

    /// <summary>Scores from a [C, C] count matrix and the per-image statistics of the same images (for example
    /// the sums of several processes' shares of an evaluation).</summary>
    public static SegmentationMetrics From(long[,] counts, ImageStatistics statistics, IReadOnlyList<string>? classNames = null)
    {
        ArgumentNullException.ThrowIfNull(counts);
        ArgumentNullException.ThrowIfNull(statistics);
        var scored = statistics.ScoredImages;
        var imageMean = scored == 0 ? 0.0 : statistics.UnionMeanIoUSum() / scored;
        return FromCounts(counts, classNames, imageMean, scored) with { PerImage = PerImageScores.From(statistics) };
    }

    /// <summary>
    /// Scores from a [C, C] count matrix (row: ground truth, column: prediction). The image mIoU cannot be derived
    /// from dataset-level counts, so it is passed in.
    /// </summary>
    public static SegmentationMetrics FromCounts(long[,] counts, IReadOnlyList<string>? classNames = null,
        double imageMeanIoU = 0.0, long images = 0)
    {
        ArgumentNullException.ThrowIfNull(counts);
        var c = counts.GetLength(0);
        if (counts.GetLength(1) != c)
            throw new ArgumentException($"counts must be square, got [{c}, {counts.GetLength(1)}].", nameof(counts));
        if (classNames is not null && classNames.Count != c)
            throw new ArgumentException($"{classNames.Count} class names given for {c} classes.", nameof(classNames));

        var classes = new List<ClassMetrics>(c);
        long total = 0, correct = 0;
        for (var k = 0; k < c; k++)
        {
            long tp = counts[k, k], gt = 0, pred = 0;
            for (var j = 0; j < c; j++) { gt += counts[k, j]; pred += counts[j, k]; }
            total += gt;
            correct += tp;
            var union = gt + pred - tp;
            classes.Add(new ClassMetrics(
                k, classNames?[k] ?? k.ToString(System.Globalization.CultureInfo.InvariantCulture),
                IoU: union > 0 ? (double)tp / union : null,
                Dice: union > 0 ? 2.0 * tp / (gt + pred) : null,
                Precision: pred > 0 ? (double)tp / pred : null,
                Recall: gt > 0 ? (double)tp / gt : null,
                gt, pred));
        }
        return new SegmentationMetrics(
            classes,
            MeanIoU: Mean(classes.Select(m => m.IoU)),
            PixelAccuracy: total > 0 ? (double)correct / total : 0.0,
            MeanAccuracy: Mean(classes.Select(m => m.Recall)),
            MeanDice: Mean(classes.Select(m => m.Dice)),
            MeanIoUPerImageGtOrPredicted: imageMeanIoU,
            LabelledPixels: total,
            Images: images);
    }

    static double Mean(IEnumerable<double?> values)
    {
        var defined = values.Where(v => v.HasValue).Select(v => v!.Value).ToList();
        return defined.Count == 0 ? 0.0 : defined.Average();
    }
}
