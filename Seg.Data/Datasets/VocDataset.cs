namespace Seg.Data.Datasets;

/// <summary>
/// Pascal VOC 2012 segmentation: <c>JPEGImages/{id}.jpg</c>, <c>SegmentationClass/{id}.png</c> (palette PNGs,
/// 255 on object borders), ids from <c>ImageSets/Segmentation/{split}.txt</c>. With SBD's augmented masks
/// (<c>SegmentationClassAug/{id}.png</c>, 8-bit index PNGs) present, ids missing from
/// <c>SegmentationClass</c> take their mask from there, and the split list may also live in
/// <c>ImageSets/SegmentationAug/</c> (e.g. <c>train_aug</c>). 21 classes with VOC's names and palette.
/// The root may be <c>VOC2012</c> itself or a directory holding <c>VOCdevkit/VOC2012</c>.
/// </summary>
public sealed class VocDataset : FileDatasetBase
{
    VocDataset(IReadOnlyList<FileSample> samples, string description, long ignoreIndex, BadSampleMode mode)
        : base(samples, description, VocClasses.Names, VocClasses.Palette, ignoreIndex, mode) { }

    /// <summary>Lists the ids of <paramref name="options"/>' split.</summary>
    public static VocDataset Open(DatasetOptions options)
    {
        var given = RequireDirectory(options.Root ?? throw new ArgumentException("dataset 'voc' needs 'root'"), "dataset root");
        var root = new[] { given, Path.Combine(given, "VOC2012"), Path.Combine(given, "VOCdevkit", "VOC2012") }
            .FirstOrDefault(d => Directory.Exists(Path.Combine(d, "JPEGImages")))
            ?? throw new BadSampleException(Path.Combine(given, "JPEGImages"), "VOC images directory does not exist (looked in the root, VOC2012/ and VOCdevkit/VOC2012/)");

        var lists = new[] { "Segmentation", "SegmentationAug" }.Select(d => Path.Combine(root, "ImageSets", d, options.Split + ".txt")).ToArray();
        var list = lists.FirstOrDefault(File.Exists)
            ?? throw new BadSampleException(lists[0], $"split list for '{options.Split}' does not exist (also looked for {lists[1]})");
        string classDir = Path.Combine(root, "SegmentationClass"), augDir = Path.Combine(root, "SegmentationClassAug");
        var rejected = new List<BadSampleException>();
        var samples = new List<FileSample>();
        foreach (var line in File.ReadLines(list))
        {
            var id = line.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault();
            if (id is null) continue;
            // SBD lists may carry "/JPEGImages/x.jpg /SegmentationClassAug/x.png" pairs; keep the stem.
            id = Path.GetFileNameWithoutExtension(id);
            var image = Path.Combine(root, "JPEGImages", id + ".jpg");
            var mask = new[] { Path.Combine(classDir, id + ".png"), Path.Combine(augDir, id + ".png") }.FirstOrDefault(File.Exists);
            if (mask is null)
            {
                var e = new BadSampleException(Path.Combine(classDir, id + ".png"), $"mask file is missing for id '{id}' listed in {list}");
                if (options.OnBadSample == BadSampleMode.Error) throw e;
                rejected.Add(e);
                continue;
            }
            samples.Add(new FileSample(image, mask, id));
        }
        var dataset = new VocDataset(samples, list, options.IgnoreIndex, options.OnBadSample);
        foreach (var e in rejected) dataset.Reject(e);
        return dataset;
    }
}
