using OpenCvSharp;
using Seg.Core;
using Seg.Core.Readers;
using Seg.Onnx.Imaging;
using Seg.Platform.IO;

namespace Seg.Data.Imaging;

/// <summary>
/// Reading image and mask files with errors that name the file and the value at fault
/// (<see cref="BadSampleException"/>), and the label-range check every file-backed dataset applies.
/// </summary>
public static class SampleFiles
{
    /// <summary>Image file extensions (lower case) that the file-backed datasets accept: <see cref="ImageFiles.Extensions"/>,
    /// the one list that <c>predict</c> uses too (WebP included).</summary>
    public static IReadOnlyList<string> ImageExtensions => ImageFiles.Extensions;

    /// <summary>What a file-backed dataset allocates per pixel of an image after decoding it: the float32 RGB tensor
    /// (12 bytes) the loader makes at the image's own size, counted with the decode against
    /// <see cref="ReaderLimits.MaxDecompressedBytes"/>.</summary>
    public const int TensorBytesPerPixel = 12;

    /// <summary>Reads an image as HWC 8-bit BGR, through Seg.Onnx's <see cref="ImageFiles.Read"/>: a regular file,
    /// a PNG, JPEG, BMP, TIFF or WebP by content, whose declared size, decoded and then processed at
    /// <paramref name="pipelineBytesPerPixel"/>, fits <see cref="ReaderLimits.MaxDecompressedBytes"/>.</summary>
    /// <param name="path">The image.</param>
    /// <param name="pipelineBytesPerPixel">What the caller allocates per pixel afterwards (default: the loader's tensor).</param>
    /// <exception cref="BadSampleException">Missing, not a regular file, unreadable, corrupt, of another format, or
    /// over the limit; whatever the decoder throws comes out as this, naming the file.</exception>
    public static Mat ReadImage(string path, long pipelineBytesPerPixel = TensorBytesPerPixel)
    {
        if (!File.Exists(path) && !Directory.Exists(path)) throw Missing(path, "image");
        return Guarded(path, "image", () => ImageFiles.Read(path, ImreadModes.Color, pipelineBytesPerPixel, ReaderLimits.MaxDecompressedBytes, LimitName));
    }

    // A name that is not valid UTF-8 reaches .NET with U+FFFD in place of the bad bytes and cannot be opened under
    // that name: say so, rather than "missing".
    static BadSampleException Missing(string path, string what) =>
        Path.GetFileName(path).Contains('\uFFFD')
            ? new BadSampleException(path, $"the {what} file's name is not valid UTF-8 (shown with U+FFFD), so it cannot be opened by that name; rename the file")
            : new BadSampleException(path, $"{what} file is missing");

    const string LimitName = $"ReaderLimits.MaxDecompressedBytes or {ReaderLimits.MaxDecompressedBytesVariable} raise it";

    /// <summary>
    /// Reads a label mask: a palette PNG (labels = palette indices), or a single-channel 8/16-bit image
    /// (labels = pixel values). The result is <c>CV_8U</c> when every label and <paramref name="ignoreIndex"/> fit
    /// a byte, else <c>CV_32S</c>.
    /// </summary>
    /// <exception cref="BadSampleException">As for <see cref="ReadImage"/>, and for a mask of the wrong type.</exception>
    public static Mat ReadMask(string path, long ignoreIndex)
    {
        if (!File.Exists(path) && !Directory.Exists(path)) throw Missing(path, "mask");
        return Guarded(path, "mask", () =>
        {
            Mat mask;
            FileChecks.RequireRegularFile(path, "mask"); // before the palette reader opens it
            if (PalettePng.TryRead(path, out var indices, out _)) mask = indices!;
            else
            {
                mask = ImageFiles.Read(path, ImreadModes.Unchanged, 4, ReaderLimits.MaxDecompressedBytes, LimitName); // 16-bit masks widen to 32-bit labels
                if (mask.Channels() != 1)
                {
                    int channels = mask.Channels();
                    mask.Dispose();
                    throw new BadSampleException(path, $"mask has {channels} channels without a palette; expected an 8-bit index PNG or a palette PNG");
                }
                if (mask.Depth() == MatType.CV_16U) ConvertInPlace(ref mask, MatType.CV_32SC1);
                else if (mask.Depth() != MatType.CV_8U)
                {
                    var t = mask.Type();
                    mask.Dispose();
                    throw new BadSampleException(path, $"mask pixel type {t} is not 8- or 16-bit unsigned");
                }
            }
            if (mask.Type() == MatType.CV_8UC1 && ignoreIndex is < 0 or > 255) ConvertInPlace(ref mask, MatType.CV_32SC1);
            return mask;
        });
    }

    /// <summary>Runs a decoder; anything it throws other than a <see cref="BadSampleException"/> (OpenCV's own
    /// errors and limits, I/O errors, out-of-memory) becomes one naming the file.</summary>
    static Mat Guarded(string path, string what, Func<Mat> read)
    {
        try { return read(); }
        catch (BadSampleException) { throw; }
        catch (Exception e) when (e is InvalidDataException or IOException && e.Message.StartsWith(path + ": ", StringComparison.Ordinal))
        {
            throw new BadSampleException(path, e.Message[(path.Length + 2)..], e); // already names the file
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new BadSampleException(path, $"cannot decode {what} ({e.GetType().Name}: {FirstLine(e.Message)})", e);
        }
    }

    static string FirstLine(string s) => s.Split('\n', 2)[0].Trim();

    static void ConvertInPlace(ref Mat mask, MatType type)
    {
        var converted = new Mat();
        mask.ConvertTo(converted, type);
        mask.Dispose();
        mask = converted;
    }

    /// <summary>Throws if <paramref name="image"/> and <paramref name="mask"/> differ in size.</summary>
    public static void CheckSameSize(Mat image, Mat mask, string imagePath, string maskPath)
    {
        if (image.Rows != mask.Rows || image.Cols != mask.Cols)
            throw new BadSampleException(maskPath,
                $"mask is {mask.Cols}x{mask.Rows} but its image {imagePath} is {image.Cols}x{image.Rows} (width x height)");
    }

    /// <summary>
    /// Throws naming the first pixel whose label is neither in [0, <paramref name="numClasses"/>) nor
    /// <paramref name="ignoreIndex"/>.
    /// </summary>
    public static unsafe void CheckLabels(Mat mask, int numClasses, long ignoreIndex, string path)
    {
        bool is8 = mask.Type() == MatType.CV_8UC1;
        if (!is8 && mask.Type() != MatType.CV_32SC1)
            throw new BadSampleException(path, $"mask type {mask.Type()} is not CV_8UC1 or CV_32SC1");
        int rows = mask.Rows, cols = mask.Cols;
        for (int y = 0; y < rows; y++)
        {
            if (is8)
            {
                byte* row = (byte*)mask.Ptr(y);
                for (int x = 0; x < cols; x++)
                    if (row[x] >= numClasses && row[x] != ignoreIndex) throw BadLabel(path, row[x], x, y, numClasses, ignoreIndex);
            }
            else
            {
                int* row = (int*)mask.Ptr(y);
                for (int x = 0; x < cols; x++)
                    if ((row[x] < 0 || row[x] >= numClasses) && row[x] != ignoreIndex) throw BadLabel(path, row[x], x, y, numClasses, ignoreIndex);
            }
        }
    }

    static BadSampleException BadLabel(string path, long value, int x, int y, int numClasses, long ignoreIndex) =>
        new(path, $"label {value} at (x={x}, y={y}) is outside [0, {numClasses}) and is not the ignore index {ignoreIndex}");
}
