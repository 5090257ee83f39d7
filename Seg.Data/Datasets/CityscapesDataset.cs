using OpenCvSharp;

namespace Seg.Data.Datasets;

/// <summary>
/// Cityscapes fine annotations: <c>leftImg8bit/{split}/{city}/*_leftImg8bit.png</c> with
/// <c>gtFine/{split}/{city}/*_gtFine_labelIds.png</c>; the 34 label ids are mapped to the 19 train ids, every
/// other label id to the ignore index. A mask value above 33 is not a Cityscapes label id and is an error.
/// </summary>
public sealed class CityscapesDataset : FileDatasetBase
{
    const int MaxLabelId = 33;
    readonly Mat lookUp;

    CityscapesDataset(IReadOnlyList<FileSample> samples, string description, long ignoreIndex, BadSampleMode mode)
        : base(samples, description, CityscapesClasses.Names, CityscapesClasses.Palette, ignoreIndex, mode)
    {
        // Train ids go through a byte table with 255 as "ignore"; MapMask widens when the ignore index is not 255.
        lookUp = Mat.FromPixelData(1, 256, MatType.CV_8UC1, CityscapesClasses.TrainIdTable(255));
    }

    /// <summary>Lists the images of <paramref name="options"/>' split and pairs each with its labelIds mask.</summary>
    public static CityscapesDataset Open(DatasetOptions options)
    {
        var root = RequireDirectory(options.Root ?? throw new ArgumentException("dataset 'cityscapes' needs 'root'"), "dataset root");
        var imageDir = RequireDirectory(Path.Combine(root, "leftImg8bit", options.Split), "Cityscapes images");
        var gtDir = Path.Combine(root, "gtFine", options.Split);
        var rejected = new List<BadSampleException>();
        var samples = new List<FileSample>();
        const string suffix = "_leftImg8bit.png";
        foreach (var image in Directory.EnumerateFiles(imageDir, "*" + suffix, SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            var stem = Path.GetFileName(image)[..^suffix.Length];
            var city = Path.GetRelativePath(imageDir, Path.GetDirectoryName(image)!);
            var mask = Path.Combine(gtDir, city, stem + "_gtFine_labelIds.png");
            if (!File.Exists(mask))
            {
                var e = new BadSampleException(mask, $"mask file is missing for image {image}");
                if (options.OnBadSample == BadSampleMode.Error) throw e;
                rejected.Add(e);
                continue;
            }
            samples.Add(new FileSample(image, mask, stem));
        }
        var dataset = new CityscapesDataset(samples, $"{imageDir} (split '{options.Split}')", options.IgnoreIndex, options.OnBadSample);
        foreach (var e in rejected) dataset.Reject(e);
        return dataset;
    }

    /// <inheritdoc/>
    protected override Mat MapMask(Mat raw, string maskPath)
    {
        using (raw)
        {
            using var bytes = new Mat();
            if (raw.Type() != MatType.CV_8UC1)
            {
                // Read as 16-bit, or widened because the ignore index does not fit a byte.
                Cv2.MinMaxLoc(raw, out double lo, out double hi, out Point loAt, out Point hiAt);
                if (lo < 0 || hi > MaxLabelId)
                {
                    var (v, where) = lo < 0 ? (lo, loAt) : (hi, hiAt);
                    throw new BadSampleException(maskPath, $"label id {v} at (x={where.X}, y={where.Y}) is not a Cityscapes label id (0..{MaxLabelId})");
                }
                raw.ConvertTo(bytes, MatType.CV_8UC1);
            }
            else raw.CopyTo(bytes);
            Cv2.MinMaxLoc(bytes, out _, out double max, out _, out Point at);
            if (max > MaxLabelId)
                throw new BadSampleException(maskPath, $"label id {max} at (x={at.X}, y={at.Y}) is not a Cityscapes label id (0..{MaxLabelId})");
            var train = new Mat();
            Cv2.LUT(bytes, lookUp, train);
            if (IgnoreIndex == 255) return train;
            using (train)
            {
                var mapped = new Mat();
                train.ConvertTo(mapped, MatType.CV_32SC1);
                using var ignored = new Mat();
                Cv2.Compare(train, new Scalar(255), ignored, CmpTypes.EQ);
                mapped.SetTo(new Scalar(IgnoreIndex), ignored);
                return mapped;
            }
        }
    }
}
