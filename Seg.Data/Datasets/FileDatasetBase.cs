using OpenCvSharp;
using Seg.Data.Imaging;

namespace Seg.Data.Datasets;

/// <summary>
/// A dataset of (image file, mask file) pairs: reads both, checks their sizes and labels, and maps raw mask
/// values to labels through <see cref="MapMask"/> (identity unless a subclass overrides it).
/// </summary>
public abstract class FileDatasetBase : SegmentationDatasetBase
{
    readonly string description;

    /// <summary>Takes the listed pairs; an empty list is an error naming the split.</summary>
    protected FileDatasetBase(IReadOnlyList<FileSample> samples, string description, IReadOnlyList<string> classNames,
        IReadOnlyList<(byte R, byte G, byte B)> palette, long ignoreIndex, BadSampleMode onBadSample)
        : base(classNames, palette, ignoreIndex, onBadSample)
    {
        this.description = description;
        Samples = samples;
        if (samples.Count == 0) throw new BadSampleException(description, "the split has no samples (empty split)");
    }

    /// <summary>The listed pairs, in sample order.</summary>
    public IReadOnlyList<FileSample> Samples { get; }

    /// <inheritdoc/>
    public override int Count => Samples.Count;

    /// <inheritdoc/>
    protected override string Describe() => description;

    /// <inheritdoc/>
    protected override SegmentationSample Load(int index)
    {
        var s = Samples[index];
        var image = SampleFiles.ReadImage(s.ImagePath);
        Mat? mask = null;
        try
        {
            mask = MapMask(SampleFiles.ReadMask(s.MaskPath, IgnoreIndex), s.MaskPath);
            SampleFiles.CheckSameSize(image, mask, s.ImagePath, s.MaskPath);
            SampleFiles.CheckLabels(mask, NumClasses, IgnoreIndex, s.MaskPath);
            return new SegmentationSample(image, mask, s.Id);
        }
        catch
        {
            image.Dispose();
            mask?.Dispose();
            throw;
        }
    }

    /// <summary>Turns raw mask values into labels (takes ownership of <paramref name="raw"/>).</summary>
    protected virtual Mat MapMask(Mat raw, string maskPath) => raw;

    /// <summary>The existing file <paramref name="directory"/>/<paramref name="stem"/>.ext for any accepted
    /// extension, preferring .png; null if none.</summary>
    protected static string? FindByStem(string directory, string stem)
    {
        foreach (var ext in SampleFiles.ImageExtensions)
        {
            var path = Path.Combine(directory, stem + ext);
            if (File.Exists(path)) return path;
        }
        return null;
    }

    /// <summary>Throws a <see cref="BadSampleException"/> naming <paramref name="path"/> if the directory is missing.</summary>
    protected static string RequireDirectory(string path, string what)
    {
        if (!Directory.Exists(path)) throw new BadSampleException(path, $"{what} directory does not exist");
        return path;
    }
}
