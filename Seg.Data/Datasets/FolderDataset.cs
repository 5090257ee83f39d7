using OpenCvSharp;
using Seg.Data.Imaging;

namespace Seg.Data.Datasets;

/// <summary>
/// <c>images/</c> + <c>masks/</c> with matching file stems (<see cref="SampleFiles.ImageExtensions"/>). With split sub-folders
/// (<c>images/train</c>, <c>masks/train</c>) the split picks one; without them every file is in every split.
/// Masks are 8-bit index images or palette PNGs (the palette index is the label).
/// </summary>
public sealed class FolderDataset : FileDatasetBase
{
    FolderDataset(IReadOnlyList<FileSample> samples, string description, IReadOnlyList<string> names,
        IReadOnlyList<(byte R, byte G, byte B)> palette, long ignoreIndex, BadSampleMode mode)
        : base(samples, description, names, palette, ignoreIndex, mode) { }

    /// <summary>Lists the files of <paramref name="options"/>' root and split.</summary>
    public static FolderDataset Open(DatasetOptions options)
    {
        var root = RequireDirectory(options.Root ?? throw new ArgumentException("dataset 'folder' needs 'root'"), "dataset root");
        string imagesDir = Path.Combine(root, "images"), masksDir = Path.Combine(root, "masks");
        if (Directory.Exists(Path.Combine(imagesDir, options.Split)))
            (imagesDir, masksDir) = (Path.Combine(imagesDir, options.Split), Path.Combine(masksDir, options.Split));
        RequireDirectory(imagesDir, "images");
        RequireDirectory(masksDir, "masks");

        var rejected = new List<BadSampleException>();
        var samples = new List<FileSample>();
        foreach (var image in Directory.EnumerateFiles(imagesDir)
                     .Where(f => SampleFiles.ImageExtensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
                     .Order(StringComparer.Ordinal))
        {
            var stem = Path.GetFileNameWithoutExtension(image);
            var mask = FindByStem(masksDir, stem);
            if (mask is null)
            {
                var e = new BadSampleException(Path.Combine(masksDir, stem + ".png"), $"mask file is missing for image {image}");
                if (options.OnBadSample == BadSampleMode.Error) throw e;
                rejected.Add(e);
            }
            else samples.Add(new FileSample(image, mask, stem));
        }
        string description = $"{imagesDir} (split '{options.Split}')";
        if (samples.Count == 0) throw new BadSampleException(description, "the split has no samples (empty split)");

        int numClasses = options.NumClasses ?? InferNumClasses(samples, options.IgnoreIndex, options.OnBadSample, rejected);
        if (samples.Count == 0) throw new BadSampleException(description, "the split has no readable samples (on_bad_sample: skip)");
        var names = options.ClassNames ?? Enumerable.Range(0, numClasses).Select(i => $"class{i}").ToArray();
        if (names.Count != numClasses)
            throw new ArgumentException($"dataset 'folder': class_names has {names.Count} names but num_classes is {numClasses}");
        var palette = FilePalette(samples[0].MaskPath, numClasses);
        var dataset = new FolderDataset(samples, description, names, palette, options.IgnoreIndex, options.OnBadSample);
        foreach (var e in rejected) dataset.Reject(e);
        return dataset;
    }

    // Reads every mask once: the largest label that is not the ignore index, plus one. In skip mode a mask that
    // cannot be read drops its sample (counted with the others rejected while listing).
    static int InferNumClasses(List<FileSample> samples, long ignoreIndex, BadSampleMode mode, List<BadSampleException> rejected)
    {
        long max = 0;
        foreach (var s in samples.ToList())
        {
            Mat read;
            try { read = SampleFiles.ReadMask(s.MaskPath, ignoreIndex); }
            catch (BadSampleException e) when (mode == BadSampleMode.Skip)
            {
                rejected.Add(e);
                samples.Remove(s);
                continue;
            }
            using var mask = read;
            using var valid = new Mat();
            using var wide = new Mat();
            mask.ConvertTo(wide, MatType.CV_32SC1);
            Cv2.Compare(wide, new Scalar(ignoreIndex), valid, CmpTypes.NE);
            Cv2.MinMaxLoc(wide, out _, out double m, out _, out Point at, valid);
            if (m >= MaxInferredClasses)
            {
                var e = new BadSampleException(s.MaskPath, $"label {m} at (x={at.X}, y={at.Y}) would make {m + 1} classes, beyond the {MaxInferredClasses} " +
                                                          "that the folder dataset infers from masks; set data.num_classes if there really are that many, or fix the mask");
                if (mode == BadSampleMode.Error) throw e;
                rejected.Add(e);
                samples.Remove(s);
                continue;
            }
            max = Math.Max(max, (long)m);
        }
        return (int)max + 1;
    }

    /// <summary>The most classes <see cref="Open"/> infers from the masks' largest label when <c>num_classes</c> is not
    /// given: one stray 16-bit value (60000) would otherwise make a model with 60001 outputs.</summary>
    public const int MaxInferredClasses = 1024;

    // The first mask's own palette when it is a palette PNG, else VOC's colours.
    static IReadOnlyList<(byte R, byte G, byte B)> FilePalette(string maskPath, int numClasses)
    {
        IReadOnlyList<(byte R, byte G, byte B)> palette = VocClasses.Palette;
        try
        {
            if (PalettePng.TryRead(maskPath, out var indices, out var own) && own!.Length >= numClasses) palette = own;
            indices?.Dispose();
        }
        catch (BadSampleException)
        {
            // A corrupt first mask keeps VOC's colours; reading the sample reports (or skips) it.
        }
        return palette.Count >= numClasses ? palette
            : palette.Concat(Enumerable.Range(palette.Count, numClasses - palette.Count).Select(i => VocClasses.Palette[i % 256])).ToArray();
    }
}
