namespace Seg.Core.Metrics;

/// <summary>
/// Scores of one class over a whole split. A score whose denominator is zero is <c>null</c> (for example the IoU of
/// a class that appears neither in the ground truth nor in the predictions): such a class is left out of the means.
/// </summary>
/// <param name="Index">Class index.</param>
/// <param name="Name">Class name (the index as text when the dataset names none).</param>
/// <param name="IoU">TP / (TP + FP + FN); null when the union is empty.</param>
/// <param name="Dice">2 TP / (2 TP + FP + FN); null when the union is empty.</param>
/// <param name="Precision">TP / (TP + FP); null when the class is never predicted.</param>
/// <param name="Recall">TP / (TP + FN); null when the class never occurs in the ground truth.</param>
/// <param name="GroundTruthPixels">TP + FN: labelled pixels of this class.</param>
/// <param name="PredictedPixels">TP + FP: pixels predicted as this class (ignored pixels excluded).</param>
public sealed record ClassMetrics(
    int Index, string Name, double? IoU, double? Dice, double? Precision, double? Recall,
    long GroundTruthPixels, long PredictedPixels)
{
    /// <summary>Per-class accuracy, as in mmseg and torchvision: the recall of the class.</summary>
    public double? Accuracy => Recall;
}
