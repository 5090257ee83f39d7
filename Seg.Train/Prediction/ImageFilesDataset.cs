using OpenCvSharp;
using Seg.Data;

namespace Seg.Train.Prediction;

/// <summary>Unlabelled images from files, as a dataset (every mask pixel ignored), so that the loader batches them.
/// <paramref name="pipelineBytesPerPixel"/> is what prediction allocates per pixel after the decode, counted with it
/// against the image memory limit before the file is decoded.</summary>
public sealed class ImageFilesDataset(IReadOnlyList<string> files, IReadOnlyList<string> classNames,
    IReadOnlyList<(byte R, byte G, byte B)> palette, long pipelineBytesPerPixel = Seg.Data.Imaging.SampleFiles.TensorBytesPerPixel) : ISegmentationDataset
{
    /// <summary>Image file extensions <see cref="Find"/> picks up: the datasets' list (<see cref="Seg.Data.Imaging.SampleFiles.ImageExtensions"/>).</summary>
    public static IReadOnlyList<string> Extensions => Seg.Data.Imaging.SampleFiles.ImageExtensions;

    /// <summary>The file itself, or the images directly inside a directory (sorted by name).</summary>
    public static IReadOnlyList<string> Find(string input)
    {
        if (File.Exists(input)) return [input];
        if (!Directory.Exists(input)) throw new FileNotFoundException($"--input: no such file or directory: {input}", input);
        var files = Directory.EnumerateFiles(input)
            .Where(f => Extensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
            .Order(StringComparer.Ordinal).ToList();
        return files.Count > 0 ? files : throw new FileNotFoundException($"--input: no images ({string.Join(", ", Extensions)}) in {input}", input);
    }

    /// <summary>The files, in order.</summary>
    public IReadOnlyList<string> Files => files;
    /// <inheritdoc />
    public int Count => files.Count;
    /// <inheritdoc />
    public int NumClasses => classNames.Count;
    /// <inheritdoc />
    public long IgnoreIndex => 255;
    /// <inheritdoc />
    public IReadOnlyList<string> ClassNames => classNames;
    /// <inheritdoc />
    public IReadOnlyList<(byte R, byte G, byte B)> Palette => palette;

    /// <inheritdoc />
    public SegmentationSample Get(int index)
    {
        var path = files[index];
        // The datasets' reader: size-checked before decoding, and any decoder failure named (BadSampleException).
        var image = Seg.Data.Imaging.SampleFiles.ReadImage(path, pipelineBytesPerPixel);
        var mask = new Mat(image.Rows, image.Cols, MatType.CV_8UC1, new Scalar(255));
        return new SegmentationSample(image, mask, Path.GetFileNameWithoutExtension(path));
    }
}
