using OpenCvSharp;

namespace Seg.Onnx.Imaging;

/// <summary>
/// Paints label maps in a palette, with OpenCV only (no TorchSharp), so that a deploy app can draw what
/// <see cref="OnnxSegmenter.Predict(Mat)"/> returns in the file's own palette (<see cref="OnnxModelMetadata.Palette"/>).
/// Seg.Data's report pictures use it too.
/// </summary>
public static class MaskColours
{
    /// <summary>Colour of ignored, unpredicted (negative) or out-of-palette pixels: white.</summary>
    public static readonly (byte R, byte G, byte B) IgnoreColour = (255, 255, 255);

    /// <summary>Paints each label with its palette colour, as an 8-bit BGR Mat of the labels' size (ignore index,
    /// negative labels and labels beyond the palette in <see cref="IgnoreColour"/>).</summary>
    /// <param name="labels">HW <c>CV_8UC1</c>, <c>CV_16UC1</c> or <c>CV_32SC1</c> labels.</param>
    /// <param name="palette">RGB colour of each class.</param>
    /// <param name="ignoreIndex">The label drawn in <see cref="IgnoreColour"/> whatever the palette says.</param>
    /// <exception cref="ArgumentException">Labels of another type.</exception>
    public static unsafe Mat Colourise(Mat labels, IReadOnlyList<(byte R, byte G, byte B)> palette, long ignoreIndex = 255)
    {
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(palette);
        var type = labels.Type();
        if (type != MatType.CV_8UC1 && type != MatType.CV_16UC1 && type != MatType.CV_32SC1)
            throw new ArgumentException($"labels must be CV_8UC1, CV_16UC1 or CV_32SC1, got {type}", nameof(labels));
        int rows = labels.Rows, cols = labels.Cols;
        var colour = new Mat(rows, cols, MatType.CV_8UC3);
        for (int y = 0; y < rows; y++)
        {
            byte* dst = (byte*)colour.Ptr(y);
            byte* row = (byte*)labels.Ptr(y);
            for (int x = 0; x < cols; x++)
            {
                long v = type == MatType.CV_8UC1 ? row[x] : type == MatType.CV_16UC1 ? ((ushort*)row)[x] : ((int*)row)[x];
                var (r, g, b) = v == ignoreIndex || v < 0 || v >= palette.Count ? IgnoreColour : palette[(int)v];
                dst[3 * x] = b;
                dst[3 * x + 1] = g;
                dst[3 * x + 2] = r;
            }
        }
        return colour;
    }
}
