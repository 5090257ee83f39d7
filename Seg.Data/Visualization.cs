using OpenCvSharp;
using Seg.Data.Transforms;
using Seg.Onnx.Imaging;
using TorchSharp;
using static TorchSharp.torch;
using Scalar = OpenCvSharp.Scalar;

namespace Seg.Data;

/// <summary>
/// Pictures for reports: colour masks from label maps, overlays of labels on images, and images back from
/// normalised tensors. Results are 8-bit BGR Mats (write them with <c>Cv2.ImWrite</c>, or take
/// <see cref="ToRgbBytes"/> for other libraries).
/// </summary>
public static class Visualization
{
    /// <summary>Colour of ignored (or out-of-palette) pixels in colour masks: white.</summary>
    public static readonly (byte R, byte G, byte B) IgnoreColour = MaskColours.IgnoreColour;

    /// <summary>Paints each label with its palette colour (ignore index and labels beyond the palette in
    /// <see cref="IgnoreColour"/>). <paramref name="labels"/>: HW <c>CV_8U</c>, <c>CV_16U</c> or <c>CV_32S</c>.
    /// The same as Seg.Onnx's <see cref="MaskColours.Colourise"/>, which needs no TorchSharp.</summary>
    public static Mat Colorize(Mat labels, IReadOnlyList<(byte R, byte G, byte B)> palette, long ignoreIndex = 255) =>
        MaskColours.Colourise(labels, palette, ignoreIndex);

    /// <summary>Colour mask of an HW integer label tensor (any device).</summary>
    public static Mat Colorize(Tensor labels, IReadOnlyList<(byte R, byte G, byte B)> palette, long ignoreIndex = 255)
    {
        using var mat = ToLabelMat(labels);
        return Colorize(mat, palette, ignoreIndex);
    }

    /// <summary>
    /// Blends the colour of each label into <paramref name="imageBgr"/> with weight <paramref name="alpha"/>;
    /// ignored pixels, and background (label 0) when <paramref name="skipBackground"/>, keep the image.
    /// </summary>
    public static Mat Overlay(Mat imageBgr, Mat labels, IReadOnlyList<(byte R, byte G, byte B)> palette,
        double alpha = 0.5, long ignoreIndex = 255, bool skipBackground = true)
    {
        if (imageBgr.Type() != MatType.CV_8UC3) throw new ArgumentException($"image must be CV_8UC3, got {imageBgr.Type()}", nameof(imageBgr));
        if (imageBgr.Rows != labels.Rows || imageBgr.Cols != labels.Cols)
            throw new ArgumentException($"image is {imageBgr.Cols}x{imageBgr.Rows} but labels are {labels.Cols}x{labels.Rows}", nameof(labels));
        using var colour = Colorize(labels, palette, ignoreIndex);
        var blended = new Mat();
        Cv2.AddWeighted(imageBgr, 1 - alpha, colour, alpha, 0, blended);
        using var keep = new Mat();
        using var wide = new Mat();
        labels.ConvertTo(wide, MatType.CV_32SC1);
        Cv2.Compare(wide, new Scalar(ignoreIndex), keep, CmpTypes.EQ);
        if (skipBackground)
        {
            using var background = new Mat();
            Cv2.Compare(wide, new Scalar(0), background, CmpTypes.EQ);
            Cv2.BitwiseOr(keep, background, keep);
        }
        imageBgr.CopyTo(blended, keep);
        return blended;
    }

    /// <summary>Overlay of an HW label tensor on an image tensor (<c>[3, H, W]</c> RGB, as the loader makes it).</summary>
    public static Mat Overlay(Tensor image, Tensor labels, IReadOnlyList<(byte R, byte G, byte B)> palette, Normalize? normalization,
        double alpha = 0.5, long ignoreIndex = 255, bool skipBackground = true)
    {
        using var img = ToImage(image, normalization);
        using var lab = ToLabelMat(labels);
        return Overlay(img, lab, palette, alpha, ignoreIndex, skipBackground);
    }

    /// <summary>
    /// The 8-bit BGR picture of a <c>[3, H, W]</c> RGB image tensor from the loader: undoes
    /// <paramref name="normalization"/> (the pipeline's <see cref="TransformPipeline.Normalization"/>), or the
    /// loader's [0, 1] scaling when it is null.
    /// </summary>
    public static unsafe Mat ToImage(Tensor image, Normalize? normalization)
    {
        if (image.dim() != 3 || image.shape[0] != 3) throw new ArgumentException($"image tensor must be [3, H, W], got [{string.Join(", ", image.shape)}]", nameof(image));
        int h = (int)image.shape[1], w = (int)image.shape[2];
        using var cpu = image.detach().to(DeviceType.CPU).to(ScalarType.Float32).contiguous();
        var data = cpu.data<float>().ToArray();
        var picture = new Mat(h, w, MatType.CV_8UC3);
        for (int y = 0; y < h; y++)
        {
            byte* dst = (byte*)picture.Ptr(y);
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++)
                {
                    double v = data[(c * h + y) * w + x];
                    v = normalization is null ? v * 255.0 : normalization.Denormalize(c, v);
                    dst[3 * x + 2 - c] = (byte)Math.Clamp(Math.Round(v), 0, 255);
                }
        }
        return picture;
    }

    /// <summary>An HW integer label tensor as a <c>CV_32SC1</c> Mat.</summary>
    public static Mat ToLabelMat(Tensor labels)
    {
        if (labels.dim() != 2) throw new ArgumentException($"label tensor must be [H, W], got [{string.Join(", ", labels.shape)}]", nameof(labels));
        using var cpu = labels.detach().to(DeviceType.CPU).to(ScalarType.Int32).contiguous();
        var data = cpu.data<int>().ToArray();
        var mat = new Mat((int)labels.shape[0], (int)labels.shape[1], MatType.CV_32SC1);
        mat.SetArray(data);
        return mat;
    }

    /// <summary>Row-major RGB bytes of an 8-bit BGR Mat (for SkiaSharp and other RGB libraries).</summary>
    public static byte[] ToRgbBytes(Mat bgr)
    {
        using var rgb = new Mat();
        Cv2.CvtColor(bgr, rgb, ColorConversionCodes.BGR2RGB);
        var bytes = new byte[rgb.Rows * rgb.Cols * 3];
        System.Runtime.InteropServices.Marshal.Copy(rgb.Data, bytes, 0, bytes.Length); // a new Mat is continuous
        return bytes;
    }
}
