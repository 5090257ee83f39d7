using OpenCvSharp;
using Seg.Core.IO;

namespace Seg.Train.Reports;

/// <summary>Writes OpenCV pictures as PNG files through <see cref="AtomicFile"/> (OpenCV's own <c>imwrite</c> follows
/// links and reports a failure only as <c>false</c>).</summary>
public static class PngFile
{
    /// <summary>Encodes <paramref name="picture"/> (8-bit or 16-bit, 1 or 3 channels) and writes it to <paramref name="path"/>.</summary>
    /// <exception cref="IOException">The picture cannot be encoded, or the file cannot be written; the message names it.</exception>
    public static void Write(string path, Mat picture)
    {
        if (!Cv2.ImEncode(".png", picture, out var bytes))
            throw new IOException($"cannot encode {path} as PNG ({picture.Type()}, {picture.Cols}x{picture.Rows})");
        AtomicFile.WriteAllBytes(path, bytes);
    }
}
