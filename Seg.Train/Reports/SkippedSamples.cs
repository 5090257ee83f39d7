using Seg.Data;
using Seg.Data.Datasets;

namespace Seg.Train.Reports;

/// <summary>What <c>data.on_bad_sample: skip</c> left out: the count of distinct bad files and the first messages
/// (each naming the file and the fault). Shown on the console as it happens, and in the report and
/// <c>metrics.json</c>.</summary>
public sealed record SkippedSamples(int Count, IReadOnlyList<string> First)
{
    /// <summary>Messages printed on the console per dataset before the rest are only counted.</summary>
    public const int Shown = 5;

    /// <summary>Nothing skipped.</summary>
    public static readonly SkippedSamples None = new(0, []);

    /// <summary>The skips of <paramref name="datasets"/> so far (datasets without the skip policy count none).</summary>
    public static SkippedSamples Of(params ISegmentationDataset[] datasets)
    {
        var logs = datasets.OfType<SegmentationDatasetBase>().Select(d => d.BadSamples).ToList();
        return new SkippedSamples(logs.Sum(l => l.Count), logs.SelectMany(l => l.Messages).Take(20).ToList());
    }

    /// <summary>Prints the skips of <paramref name="dataset"/> (<paramref name="split"/>) on <paramref name="log"/>: those met
    /// while listing the files now, later ones as they happen, the first <see cref="Shown"/> by name, then one line
    /// saying that the rest are counted.</summary>
    public static void Watch(ISegmentationDataset dataset, string split, TextWriter log)
    {
        if (dataset is not SegmentationDatasetBase { OnBadSample: BadSampleMode.Skip } d) return;
        var shown = 0;
        void Say(string message)
        {
            var n = Interlocked.Increment(ref shown);
            if (n <= Shown) log.WriteLine($"warning: skipped a bad {split} sample (data.on_bad_sample: skip): {message}");
            else if (n == Shown + 1) log.WriteLine($"warning: more bad {split} samples skipped; their count is in the report and metrics.json");
        }
        foreach (var message in d.BadSamples.Messages) Say(message);
        d.BadSamples.Skipped += e => Say(e.Message);
    }
}
