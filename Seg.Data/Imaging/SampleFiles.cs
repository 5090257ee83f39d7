using System.Buffers.Binary;
using OpenCvSharp;
using Seg.Core;

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
    /// <exception cref="BadSampleException">Missing, unreadable, corrupt, or declaring more pixels than
    /// <see cref="Seg.Core.Readers.ReaderLimits.MaxDecompressedBytes"/> allows; whatever the decoder throws comes out as this,
    /// naming the file.</exception>
    public static Mat ReadImage(string path)
    {
        if (!File.Exists(path)) throw new BadSampleException(path, "image file is missing");
        return Guarded(path, "image", () =>
        {
            CheckDeclaredSize(path, bytesPerPixel: 3);
            var image = Cv2.ImRead(path, ImreadModes.Color);
            if (image.Empty())
            {
                image.Dispose();
                throw new BadSampleException(path, $"cannot decode image ({new FileInfo(path).Length} bytes; corrupt or not an image)");
            }
            return image;
        });
    }

    /// <summary>
    /// Reads a label mask: a palette PNG (labels = palette indices), or a single-channel 8/16-bit image
    /// (labels = pixel values). The result is <c>CV_8U</c> when every label and <paramref name="ignoreIndex"/> fit
    /// a byte, else <c>CV_32S</c>.
    /// </summary>
    /// <exception cref="BadSampleException">As for <see cref="ReadImage"/>, and for a mask of the wrong type.</exception>
    public static Mat ReadMask(string path, long ignoreIndex)
    {
        if (!File.Exists(path)) throw new BadSampleException(path, "mask file is missing");
        return Guarded(path, "mask", () =>
        {
            Mat mask;
            if (PalettePng.TryRead(path, out var indices, out _)) mask = indices!;
            else
            {
                CheckDeclaredSize(path, bytesPerPixel: 4); // 16-bit masks widen to 32-bit labels
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
        });
    }

    /// <summary>Runs a decoder; anything it throws other than a <see cref="BadSampleException"/> (OpenCV's own
    /// errors and limits, I/O errors, out-of-memory) becomes one naming the file.</summary>
    static Mat Guarded(string path, string what, Func<Mat> read)
    {
        try { return read(); }
        catch (BadSampleException) { throw; }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new BadSampleException(path, $"cannot decode {what} ({e.GetType().Name}: {FirstLine(e.Message)})", e);
        }
    }

    static string FirstLine(string s) => s.Split('\n', 2)[0].Trim();

    /// <summary>
    /// Reads the width and height a PNG, BMP or JPEG header declares and refuses the file before decoding when
    /// <paramref name="bytesPerPixel"/> per pixel would exceed <see cref="Seg.Core.Readers.ReaderLimits.MaxDecompressedBytes"/>
    /// (OpenCV's own limit, 2^30 pixels, still allows 4 GiB). Other formats are left to OpenCV's limit.
    /// </summary>
    internal static void CheckDeclaredSize(string path, int bytesPerPixel)
    {
        using var f = File.OpenRead(path);
        Span<byte> head = stackalloc byte[33];
        int n = f.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        head = head[..n];
        if (head.StartsWith((ReadOnlySpan<byte>)[137, 80, 78, 71, 13, 10, 26, 10]))
        {
            var ihdr = PalettePng.Ihdr.Parse(path, head.ToArray());
            PalettePng.CheckDecodedSize(path, ihdr.Width, ihdr.Height, Math.Max(bytesPerPixel, ihdr.DecodedBytesPerPixel));
        }
        else if (head.Length >= 26 && head.StartsWith("BM"u8))
        {
            long w = Math.Abs((long)BinaryPrimitives.ReadInt32LittleEndian(head[18..]));
            long h = Math.Abs((long)BinaryPrimitives.ReadInt32LittleEndian(head[22..]));
            PalettePng.CheckDecodedSize(path, w, h, bytesPerPixel);
        }
        else if (head.Length >= 2 && head[0] == 0xFF && head[1] == 0xD8 && JpegSize(f) is var (w, h))
            PalettePng.CheckDecodedSize(path, w, h, bytesPerPixel);
    }

    /// <summary>Width and height from a JPEG's first start-of-frame marker, or null if none is found.</summary>
    static (long Width, long Height)? JpegSize(FileStream f)
    {
        f.Position = 2;
        Span<byte> seg = stackalloc byte[7];
        while (f.Position + 4 <= f.Length)
        {
            if (f.ReadByte() != 0xFF) return null;
            int marker = f.ReadByte();
            while (marker == 0xFF) marker = f.ReadByte(); // fill bytes
            if (marker is 0xD8 or 0x01 or (>= 0xD0 and <= 0xD7)) continue; // no length
            if (marker is < 0 or 0xD9 or 0xDA) return null;            // end, or scan data before any frame
            if (f.ReadAtLeast(seg[..2], 2, throwOnEndOfStream: false) < 2) return null;
            int length = BinaryPrimitives.ReadUInt16BigEndian(seg);
            if (length < 2) return null;
            bool sof = marker is >= 0xC0 and <= 0xCF and not 0xC4 and not 0xC8 and not 0xCC;
            if (sof)
            {
                if (f.ReadAtLeast(seg[..5], 5, throwOnEndOfStream: false) < 5) return null;
                return (BinaryPrimitives.ReadUInt16BigEndian(seg[3..]), BinaryPrimitives.ReadUInt16BigEndian(seg[1..]));
            }
            f.Position += length - 2;
        }
        return null;
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
