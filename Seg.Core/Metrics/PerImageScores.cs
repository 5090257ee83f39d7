namespace Seg.Core.Metrics;

/// <summary>
/// The fine-grained mIoU of Z. Wang et al., "Revisiting Evaluation Metrics for Semantic Segmentation" (NeurIPS 2023
/// Datasets and Benchmarks), with the definitions of the official code (zifuwanggg/JDTLosses,
/// <c>metrics/accuracy_metric.py</c>), from <see cref="ImageStatistics"/>. With IoU(i, c) = TP / (TP + FP + FN) of
/// class c in image i, and class c <em>active</em> in image i when it occurs in that image's ground truth:
/// <list type="bullet">
/// <item>score of image i: the mean of IoU(i, c) over the classes active in i. A class predicted but absent from
/// the ground truth is not averaged in (its false positives still lower the IoU of the labelled class they cover).</item>
/// <item><b>mIoU^I</b> (<see cref="MeanPerImage"/>): the mean of the image scores;</item>
/// <item><b>mIoU^C</b> (<see cref="MeanPerClass"/>): for each class the mean of IoU(i, c) over the images where it is
/// active, then the mean over classes (a class active in no image is left out; the official code gives NaN);</item>
/// <item><b>worst-case</b> (<see cref="WorstPerImage"/>, <see cref="WorstPerClass"/>): the mean of the
/// n = max(1, ⌊q·count⌋) lowest values instead of all of them (per class for mIoU^C_q, then over classes).</item>
/// </list>
/// Images without a labelled pixel are not scored. <b>Two classes</b> (the official code's binary mode, which it
/// selects when there are two classes): the image score is the IoU of class 1 (the foreground), or 1 when the
/// foreground is absent from both ground truth and prediction; for mIoU^C a class is active where it occurs in the
/// ground truth or the prediction, and both classes are averaged, as the official code does.
/// </summary>
public sealed class PerImageScores
{
    readonly double?[] images;
    readonly double[] imagesSorted;
    readonly double[][] classes;       // per class: IoU over the images where it is active, in image order
    readonly double[][] classesSorted;

    PerImageScores(double?[] images, double[][] classes, bool binary)
    {
        this.images = images;
        this.classes = classes;
        Binary = binary;
        imagesSorted = Sorted(images.Where(v => v.HasValue).Select(v => v!.Value).ToArray());
        classesSorted = classes.Select(v => Sorted((double[])v.Clone())).ToArray();
    }

    // Array.Sort's primitive path: several times faster than LINQ's Order on large evaluation sets.
    static double[] Sorted(double[] values)
    {
        Array.Sort(values);
        return values;
    }

    /// <summary>No image scored: every mean is 0.</summary>
    public static PerImageScores Empty { get; } = new([], [], false);

    /// <summary>Scores from per-image statistics.</summary>
    /// <param name="statistics">Per-image TP, FP and FN of every class.</param>
    /// <param name="binary">Apply the two-class rule (foreground IoU per image); null = when there are exactly two classes.</param>
    /// <exception cref="ArgumentException"><paramref name="binary"/> is true but there are not two classes.</exception>
    public static PerImageScores From(ImageStatistics statistics, bool? binary = null)
    {
        ArgumentNullException.ThrowIfNull(statistics);
        int n = statistics.Images, c = statistics.Classes;
        var twoClass = binary ?? c == 2;
        if (twoClass && c != 2)
            throw new ArgumentException($"the two-class rule needs 2 classes, the statistics have {c}.", nameof(binary));

        var images = new double?[n];
        var perClass = Enumerable.Range(0, c).Select(_ => new List<double>()).ToArray();
        for (var i = 0; i < n; i++)
        {
            if (!statistics.Scored(i)) continue;
            double sum = 0;
            var active = 0;
            for (var k = 0; k < c; k++)
            {
                long tp = statistics.TruePositives(i, k), fp = statistics.FalsePositives(i, k), fn = statistics.FalseNegatives(i, k);
                var inTruth = tp + fn > 0;
                if (!(inTruth || (twoClass && fp > 0))) continue;
                var iou = (double)tp / (tp + fp + fn);
                perClass[k].Add(iou);
                sum += iou;
                active++;
            }
            if (twoClass)
            {
                long tp = statistics.TruePositives(i, 1), union = tp + statistics.FalsePositives(i, 1) + statistics.FalseNegatives(i, 1);
                images[i] = union == 0 ? 1.0 : (double)tp / union;
            }
            else
            {
                images[i] = sum / active; // a scored image has a labelled pixel, so an active class
            }
        }
        return new PerImageScores(images, perClass.Select(l => l.ToArray()).ToArray(), twoClass);
    }

    /// <summary>Whether the two-class rule was applied.</summary>
    public bool Binary { get; }

    /// <summary>Each image's score, in the order the images were given; null for an image without a labelled pixel.</summary>
    public IReadOnlyList<double?> PerImage => images;

    /// <summary>Number of scored images.</summary>
    public int ScoredImages => imagesSorted.Length;

    /// <summary>For each class, its IoU in each image where it is active, in image order (empty: active nowhere).</summary>
    public IReadOnlyList<IReadOnlyList<double>> PerClass => classes;

    /// <summary>mIoU^I: the mean image score (0 when no image is scored).</summary>
    public double MeanPerImage => imagesSorted.Length == 0 ? 0.0 : imagesSorted.Average();

    /// <summary>mIoU^C: the mean over classes of each class's mean IoU over the images where it is active (0 when none is).</summary>
    public double MeanPerClass => MeanOverClasses(c => ClassMean(c)!.Value);

    /// <summary>Mean IoU of class <paramref name="c"/> over the images where it is active; null when it is active nowhere.</summary>
    public double? ClassMean(int c) => classes[c].Length == 0 ? null : classes[c].Average();

    /// <summary>mIoU^I_q: the mean of the max(1, ⌊q·N⌋) lowest of the N image scores (0 when no image is scored).</summary>
    /// <param name="q">Fraction of images, in (0, 1]: 0.05 is the worst 5 %.</param>
    public double WorstPerImage(double q) => MeanOfLowest(imagesSorted, q);

    /// <summary>mIoU^C_q: per class the mean of its max(1, ⌊q·N_c⌋) lowest IoUs over the N_c images where it is active, then the mean over classes.</summary>
    /// <param name="q">Fraction of images, in (0, 1]: 0.1 is the worst 10 %.</param>
    public double WorstPerClass(double q)
    {
        CheckFraction(q);
        return MeanOverClasses(c => MeanOfLowest(classesSorted[c], q));
    }

    /// <summary>
    /// How many of <paramref name="count"/> values the worst-case means average: max(1, ⌊q·count⌋), at most
    /// <paramref name="count"/>. The floor allows for rounding in q·count (0.29 · 100 is 28.999… in binary floating
    /// point; this gives 29 where the official code's <c>int(q / 100 * n)</c> gives 28; for q = 5 % and 10 % the two
    /// agree for every count).
    /// </summary>
    public static int WorstCount(double q, int count)
    {
        CheckFraction(q);
        return count == 0 ? 0 : (int)Math.Clamp(Math.Floor(q * count * (1 + 1e-12)), 1, count);
    }

    double MeanOverClasses(Func<int, double> classValue)
    {
        var scored = Enumerable.Range(0, classes.Length).Where(c => classes[c].Length > 0).ToList();
        return scored.Count == 0 ? 0.0 : scored.Average(classValue);
    }

    static double MeanOfLowest(double[] sorted, double q)
    {
        var n = WorstCount(q, sorted.Length);
        return n == 0 ? 0.0 : sorted.Take(n).Average();
    }

    static void CheckFraction(double q)
    {
        if (!(q > 0 && q <= 1))
            throw new ArgumentOutOfRangeException(nameof(q), q, "q is a fraction of the images in (0, 1], e.g. 0.05 for the worst 5 %.");
    }
}
