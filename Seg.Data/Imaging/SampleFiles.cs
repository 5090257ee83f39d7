using OpenCvSharp;

namespace Seg.Data.Imaging;

/// <summary>
/// Reading image and mask files with errors that name the file and the value at fault
/// (<see cref="BadSampleException"/>), and the label-range check every file-backed dataset applies.
/// </summary>
public static class SampleFiles
{
    /// <summary>Image file extensions the file-backed datasets accept.</summary>
    public static readonly IReadOnlyList<string> ImageExtensions = [".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"];

    /// <summary>Reads an image as HWC 8-bit BGR.</summary>
    public static Mat ReadImage(string path)
    {
        if (!File.Exists(path)) throw new BadSampleException(path, "image file is missing");
        var image = Cv2.ImRead(path, ImreadModes.Color);
        if (image.Empty())
        {
            image.Dispose();
            throw new BadSampleException(path, $"cannot decode image ({new FileInfo(path).Length} bytes; corrupt or not an image)");
        }
        return image;
    }

    /// <summary>
    /// Reads a label mask: a palette PNG (labels = palette indices), or a single-channel 8/16-bit image
    /// (labels = pixel values). The result is <c>CV_8U</c> when every label and <paramref name="ignoreIndex"/> fit
    /// a byte, else <c>CV_32S</c>.
    /// </summary>
    public static Mat ReadMask(string path, long ignoreIndex)
    {
        if (!File.Exists(path)) throw new BadSampleException(path, "mask file is missing");
        Mat mask;
        if (PalettePng.TryRead(path, out var indices, out _)) mask = indices!;
        else
        {
            mask = Cv2.ImRead(path, ImreadModes.Unchanged);
            if (mask.Empty())
            {
                mask.Dispose();
                throw new BadSampleException(path, $"cannot decode mask ({new FileInfo(path).Length} bytes; corrupt or not an image)");
            }
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
    }

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
