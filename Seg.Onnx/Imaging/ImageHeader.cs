namespace Seg.Onnx.Imaging;

/// <summary>The image formats whose headers <see cref="ImageFiles"/> reads, and so the only ones Seg hands to OpenCV.</summary>
public enum ImageFileFormat
{
    /// <summary>PNG (ISO/IEC 15948): size, bit depth and colour type from IHDR.</summary>
    Png,
    /// <summary>JPEG (ITU T.81): size and components from the first start-of-frame marker.</summary>
    Jpeg,
    /// <summary>Windows bitmap: size and bits per pixel from the info header (OS/2 and Windows layouts).</summary>
    Bmp,
    /// <summary>TIFF and BigTIFF: size, samples and bits per sample from the first image directory.</summary>
    Tiff,
    /// <summary>WebP: the canvas (VP8X) and the first frame (VP8 or VP8L).</summary>
    WebP,
}

/// <summary>What an image file's header declares, read before anything is decoded.</summary>
/// <param name="Format">The format, from the file's signature (not its name: OpenCV sniffs the content too).</param>
/// <param name="Width">Declared width in pixels.</param>
/// <param name="Height">Declared height in pixels.</param>
/// <param name="DecodeBytesPerPixel">What the decoder holds per pixel besides its result: a TIFF strip or tile buffer
/// at the stored depth (up to the whole image), a progressive JPEG's coefficients (2 bytes per component), WebP's RGBA
/// canvas; 0 for PNG, BMP and baseline JPEG, decoded row by row into the result.</param>
public sealed record ImageHeader(ImageFileFormat Format, long Width, long Height, int DecodeBytesPerPixel)
{
    /// <summary>Width × height.</summary>
    public long Pixels => Width * Height;
}
