using System.Globalization;
using Seg.Core.Metrics;

namespace Seg.Train.Reports;

/// <summary>
/// <c>eval_log.csv</c>: <c>iteration,mIoU,aAcc,mAcc,mDice,image_mIoU</c> at each validation, for the mIoU curve.
/// Like <see cref="TrainLog"/>, resuming drops rows after the checkpoint.
/// </summary>
public static class EvalLog
{
    const string Header = "iteration,mIoU,aAcc,mAcc,mDice,image_mIoU";

    /// <summary>Starts the file, or keeps rows up to <paramref name="resumeIteration"/>.</summary>
    public static void Start(string path, long? resumeIteration)
    {
        var kept = new List<string> { Header };
        if (resumeIteration is { } last && File.Exists(path))
            kept.AddRange(File.ReadAllLines(path).Skip(1)
                .Where(l => l.Length > 0 && long.Parse(l[..l.IndexOf(',')], CultureInfo.InvariantCulture) <= last));
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        File.WriteAllLines(path, kept);
    }

    /// <summary>Appends one evaluation.</summary>
    public static void Append(string path, long iteration, SegmentationMetrics m) =>
        File.AppendAllLines(path, [string.Join(',', new[] { iteration.ToString(CultureInfo.InvariantCulture) }
            .Concat(new[] { m.MeanIoU, m.PixelAccuracy, m.MeanAccuracy, m.MeanDice, m.ImageMeanIoU }
                .Select(v => v.ToString("R", CultureInfo.InvariantCulture))))]);

    /// <summary>(iteration, mIoU, image mIoU) rows.</summary>
    public static IReadOnlyList<(long Iteration, double MeanIoU, double ImageMeanIoU)> Read(string path) =>
        !File.Exists(path) ? [] : File.ReadAllLines(path).Skip(1).Where(l => l.Length > 0).Select(l =>
        {
            var c = l.Split(',');
            return (long.Parse(c[0], CultureInfo.InvariantCulture), double.Parse(c[1], CultureInfo.InvariantCulture),
                double.Parse(c[5], CultureInfo.InvariantCulture));
        }).ToList();
}
