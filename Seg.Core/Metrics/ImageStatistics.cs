namespace Seg.Core.Metrics;

/// <summary>
/// Per-image confusion statistics: for image i (in the order the images were scored) and class c, the true
/// positives (pixels labelled c and predicted c), false positives (predicted c, labelled another class) and false
/// negatives (labelled c, predicted another class). Ignored pixels count nowhere. <see cref="ConfusionMatrix"/>
/// accumulates them on the device; <see cref="PerImageScores"/> turns them into mIoU^I and mIoU^C.
/// </summary>
public sealed class ImageStatistics
{
    readonly long[,] tp, fp, fn;

    /// <summary>Statistics from three [images, classes] arrays (copied).</summary>
    /// <exception cref="ArgumentException">The arrays differ in shape or hold a negative count.</exception>
    public ImageStatistics(long[,] truePositives, long[,] falsePositives, long[,] falseNegatives)
    {
        ArgumentNullException.ThrowIfNull(truePositives);
        ArgumentNullException.ThrowIfNull(falsePositives);
        ArgumentNullException.ThrowIfNull(falseNegatives);
        int n = truePositives.GetLength(0), c = truePositives.GetLength(1);
        foreach (var (array, name) in new[] { (falsePositives, nameof(falsePositives)), (falseNegatives, nameof(falseNegatives)) })
            if (array.GetLength(0) != n || array.GetLength(1) != c)
                throw new ArgumentException($"{name} is [{array.GetLength(0)}, {array.GetLength(1)}] but truePositives is [{n}, {c}].", name);
        foreach (var (array, name) in new[] { (truePositives, nameof(truePositives)), (falsePositives, nameof(falsePositives)), (falseNegatives, nameof(falseNegatives)) })
            foreach (var v in array)
                if (v < 0) throw new ArgumentException($"{name} holds a negative count ({v}).", name);
        (tp, fp, fn) = ((long[,])truePositives.Clone(), (long[,])falsePositives.Clone(), (long[,])falseNegatives.Clone());
        (Images, Classes) = (n, c);
        scored = CountScored();
    }

    // Takes ownership of arrays that ConfusionMatrix has just filled from non-negative counts.
    internal ImageStatistics(long[,] truePositives, long[,] falsePositives, long[,] falseNegatives, bool owned)
    {
        (tp, fp, fn) = (truePositives, falsePositives, falseNegatives);
        (Images, Classes) = (tp.GetLength(0), tp.GetLength(1));
        scored = CountScored();
    }

    readonly bool[] scored;

    bool[] CountScored()
    {
        var result = new bool[Images];
        for (var i = 0; i < Images; i++)
            for (var c = 0; c < Classes && !result[i]; c++)
                result[i] = tp[i, c] + fn[i, c] > 0;
        ScoredImages = result.Count(s => s);
        return result;
    }

    /// <summary>Number of images, scored or not.</summary>
    public int Images { get; }

    /// <summary>Number of classes.</summary>
    public int Classes { get; }

    /// <summary>Number of images with at least one labelled pixel.</summary>
    public int ScoredImages { get; private set; }

    /// <summary>Pixels of image <paramref name="image"/> labelled and predicted <paramref name="c"/>.</summary>
    public long TruePositives(int image, int c) => tp[image, c];

    /// <summary>Pixels of image <paramref name="image"/> predicted <paramref name="c"/> but labelled another class.</summary>
    public long FalsePositives(int image, int c) => fp[image, c];

    /// <summary>Pixels of image <paramref name="image"/> labelled <paramref name="c"/> but predicted another class.</summary>
    public long FalseNegatives(int image, int c) => fn[image, c];

    /// <summary>Whether the image has a labelled pixel: images with none are not scored.</summary>
    public bool Scored(int image) => scored[image];

    /// <summary>
    /// Sum over scored images of each image's mean IoU over the classes present in its ground truth or its
    /// prediction (a class predicted but absent from the ground truth enters with IoU 0): the <c>image_mIoU</c>
    /// of the reports, kept as it was before mIoU^I existed.
    /// </summary>
    public double UnionMeanIoUSum()
    {
        double sum = 0;
        for (var i = 0; i < Images; i++)
        {
            if (!Scored(i)) continue;
            double iou = 0;
            var present = 0;
            for (var c = 0; c < Classes; c++)
            {
                var union = tp[i, c] + fp[i, c] + fn[i, c];
                if (union == 0) continue;
                iou += (double)tp[i, c] / union;
                present++;
            }
            sum += iou / present;
        }
        return sum;
    }
}
