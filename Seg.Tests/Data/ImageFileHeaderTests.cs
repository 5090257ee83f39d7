using System.Buffers.Binary;
using OpenCvSharp;
using Seg.Data;
using Seg.Data.Imaging;
using Seg.Onnx;
using Seg.Onnx.Imaging;
using Seg.Tests.Models;

namespace Seg.Tests.Data;

/// <summary>
/// <see cref="ImageFiles"/>: every format's declared size read from its header, against files OpenCV wrote (the size
/// written is the oracle), and decompression bombs of each format refused from the header, counting what the
/// pipeline allocates after the decode, with the image named (issue 20).
/// </summary>
public sealed class ImageFileHeaderTests : IDisposable
{
    readonly TempFiles files = new();

    public void Dispose() => files.Dispose();

    public static TheoryData<string, int[], ImageFileFormat, int> Written => new()
    {
        { ".png", [], ImageFileFormat.Png, 0 },
        { ".jpg", [], ImageFileFormat.Jpeg, 0 },
        { ".jpg", [(int)ImwriteFlags.JpegProgressive, 1], ImageFileFormat.Jpeg, 6 }, // 3 components' coefficients
        { ".bmp", [], ImageFileFormat.Bmp, 0 },
        { ".tif", [], ImageFileFormat.Tiff, 3 },
        { ".webp", [(int)ImwriteFlags.WebPQuality, 80], ImageFileFormat.WebP, 4 },  // lossy: VP8
        { ".webp", [(int)ImwriteFlags.WebPQuality, 101], ImageFileFormat.WebP, 4 }, // lossless: VP8L
    };

    [Theory]
    [MemberData(nameof(Written))]
    public void TheHeaderGivesTheSizeOpenCvWrote(string extension, int[] flags, ImageFileFormat format, int decodeBytes)
    {
        var path = System.IO.Path.Combine(files.Dir, "written" + extension);
        using (var image = new Mat(23, 37, MatType.CV_8UC3, new Scalar(10, 120, 230)))
            Assert.True(Cv2.ImWrite(path, image, flags));
        var header = ImageFiles.ReadHeader(path);
        Assert.Equal((format, 37L, 23L, decodeBytes), (header.Format, header.Width, header.Height, header.DecodeBytesPerPixel));
        using var read = SampleFiles.ReadImage(path);
        Assert.Equal((23, 37), (read.Rows, read.Cols));
    }

    static byte[] Png(uint width, uint height) =>
    [
        137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, .. "IHDR"u8, .. BigEndian(width), .. BigEndian(height), 8, 2, 0, 0, 0, 0, 0, 0, 0,
        .. new byte[64],
    ];

    static byte[] BigEndian(uint v) { var b = new byte[4]; BinaryPrimitives.WriteUInt32BigEndian(b, v); return b; }
    static byte[] Little(uint v) { var b = new byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, v); return b; }
    static byte[] Little16(int v) { var b = new byte[2]; BinaryPrimitives.WriteUInt16LittleEndian(b, (ushort)v); return b; }

    static byte[] Riff(byte[] chunks) => [.. "RIFF"u8, .. Little((uint)(4 + chunks.Length)), .. "WEBP"u8, .. chunks];

    // A TIFF directory of width, length, 3 samples of 8 bits (an RGB image), one strip.
    static byte[] Tiff(uint width, uint height, bool bigEndian = false)
    {
        (ushort Tag, ushort Type, uint Value)[] tags = [(256, 4, width), (257, 4, height), (258, 3, 8), (277, 3, 3), (273, 4, 200), (279, 4, 16)];
        var b = new List<byte>();
        void U16(int v) { var x = new byte[2]; if (bigEndian) BinaryPrimitives.WriteUInt16BigEndian(x, (ushort)v); else BinaryPrimitives.WriteUInt16LittleEndian(x, (ushort)v); b.AddRange(x); }
        void U32(uint v) { var x = new byte[4]; if (bigEndian) BinaryPrimitives.WriteUInt32BigEndian(x, v); else BinaryPrimitives.WriteUInt32LittleEndian(x, v); b.AddRange(x); }
        b.AddRange(bigEndian ? "MM"u8.ToArray() : "II"u8.ToArray()); U16(42); U32(8);
        U16(tags.Length);
        foreach (var (tag, type, value) in tags)
        {
            U16(tag); U16(type); U32(1);
            if (type == 3) { U16((int)value); U16(0); } else U32(value);
        }
        U32(0);
        b.AddRange(new byte[200 + 16 - b.Count]);
        return [.. b];
    }

    /// <summary>Decompression bombs of every format (also crafted cases of the fuzz family <c>image-header</c>).</summary>
    public static IEnumerable<(string Id, string Extension, byte[] Bytes, string Expected)> BombCases() =>
    [
        // A 18000 x 18000 PNG is 972 MB decoded, under 1 GiB: it passed the old decode-only check, then predict
        // reached 5.1 GB. Counted with the loader's float tensor (12 bytes a pixel) it is refused.
        ("png-18000-square", ".png", Png(18000, 18000), "18000x18000 pixels"),
        // TIFF and WebP skipped the check: a 1 MB TIFF decoded to 3.2 GB, a 10 KB WebP reached 7.5 GB.
        ("tiff-32768-square", ".tif", Tiff(32768, 32768), "TIFF header declares 32768x32768 pixels"),
        ("tiff-big-endian", ".tif", Tiff(32768, 32768, bigEndian: true), "TIFF header declares 32768x32768 pixels"),
        ("webp-vp8x-canvas-2^24", ".webp", Riff([.. "VP8X"u8, .. Little(10), 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]), "WebP header declares 16777216x16777216 pixels"),
        ("webp-vp8l-16384-square", ".webp", Riff([.. "VP8L"u8, .. Little(5), 0x2F, .. Little(0x3FFF | 0x3FFF << 14)]), "WebP header declares 16384x16384 pixels"),
        ("webp-vp8-16383-square", ".webp", Riff([.. "VP8 "u8, .. Little(10), 0, 0, 0, 0x9D, 0x01, 0x2A, .. Little16(0x3FFF), .. Little16(0x3FFF)]), "WebP header declares 16383x16383 pixels"),
        ("bmp-os2-65535-square", ".bmp", [.. "BM"u8, .. new byte[12], .. Little(12), .. Little16(65535), .. Little16(65535), .. Little16(1), .. Little16(24), .. new byte[16]], "BMP header declares 65535x65535 pixels"),
        ("jpeg-progressive-8192-square", ".jpg", [0xFF, 0xD8, 0xFF, 0xC2, 0, 17, 8, 0x20, 0, 0x20, 0, 3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0, 0xFF, 0xD9], "JPEG header declares 8192x8192 pixels"),
    ];

    public static TheoryData<string, string, byte[], string> Bombs()
    {
        var data = new TheoryData<string, string, byte[], string>();
        foreach (var (id, extension, bytes, expected) in BombCases()) data.Add(id, extension, bytes, expected);
        return data;
    }

    [Theory]
    [MemberData(nameof(Bombs))]
    public void ABombOfEveryFormatIsRefusedFromItsHeaderNamingTheImage(string id, string extension, byte[] bytes, string expected)
    {
        var path = files.Write(id + extension, bytes);
        var before = GC.GetTotalAllocatedBytes();
        var e = Assert.Throws<BadSampleException>(() => SampleFiles.ReadImage(path));
        Assert.True(GC.GetTotalAllocatedBytes() - before < 16 << 20, "allocated for the declared size");
        Assert.Equal(path, e.File);
        Assert.Contains(expected, e.Message);
        Assert.Contains("beyond the image memory limit of 1 GiB", e.Message);
    }

    [Fact]
    public void TheWholePipelineIsCountedNotOnlyTheDecode()
    {
        // 8192 x 8192 baseline JPEG: 192 MiB decoded, 960 MiB with the loader's tensor: within 1 GiB. Progressive,
        // its coefficients add 6 bytes a pixel (1.3 GiB): refused. The header alone decides; nothing is decoded.
        byte[] Sof(byte marker) => [0xFF, 0xD8, 0xFF, marker, 0, 17, 8, 0x20, 0, 0x20, 0, 3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0, 0xFF, 0xD9];
        var baseline = files.Write("baseline.jpg", Sof(0xC0));
        Assert.Equal(0, ImageFiles.Check(baseline, 3, 12, ImageFiles.DefaultMaxBytes, "test").DecodeBytesPerPixel); // accepted
        var progressive = files.Write("progressive.jpg", Sof(0xC2));
        Assert.Throws<InvalidDataException>(() => ImageFiles.Check(progressive, 3, 12, ImageFiles.DefaultMaxBytes, "test"));
        // The ONNX segmenter counts its own pipeline: a 4-class model adds 12 + 16 + 4 bytes a pixel, so a
        // 6000 x 6000 PNG (108 MB decoded) needs 1.25 GB, refused by OnnxSegmenter.ReadImage with the image named.
        var png = files.Write("6000.png", Png(6000, 6000));
        using var dir = new Export.OnnxTestKit.TempDir();
        var model = dir.File("conv.onnx");
        Export.TinyOnnx.Write(model, [Export.TinyOnnx.Image()], [Export.TinyOnnx.Node("Conv", ["images", "w"], "logits")], [Export.TinyOnnx.Logits(4)],
            initializers: [Export.TinyOnnx.Constant("w", [4, 3, 1, 1], new float[12])]);
        using var segmenter = OnnxSegmenter.Load(model);
        var e = Assert.Throws<InvalidDataException>(() => segmenter.ReadImage(png));
        Assert.Contains($"{png}: the PNG header declares 6000x6000 pixels; decoding and processing them takes 35 bytes per pixel", e.Message);
        Assert.Contains("OnnxSegmenterOptions.MaxImageBytes", e.Message);
    }

    /// <summary>Content Seg does not read, or headers that do not hold (also fuzz cases of <c>image-header</c>).</summary>
    public static IEnumerable<(string Id, byte[] Bytes, string Expected)> NotImageCases() =>
    [
        // OpenCV sniffs content: these would be decoded, with sizes Seg does not check, whatever the file is called.
        ("ppm", "P6\n30000 30000\n255\n"u8.ToArray(), "not a PNG, JPEG, BMP, TIFF or WebP image"),
        ("hdr", "#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 30000 +X 30000\n"u8.ToArray(), "not a PNG, JPEG, BMP, TIFF or WebP image"),
        ("empty", [], "not a PNG, JPEG, BMP, TIFF or WebP image"),
        ("png-no-ihdr", [137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 0, .. "IEND"u8], "PNG without an IHDR chunk first"),
        ("jpeg-scan-before-frame", [0xFF, 0xD8, 0xFF, 0xDA, 0, 2], "JPEG without a frame header"),
        ("jpeg-truncated", [0xFF, 0xD8, 0xFF, 0xE0, 0x40, 0], "runs past the end"),
        ("tiff-ifd-past-end", [.. "II*\0"u8, .. Little(1 << 30)], "past the end of the file"),
        ("tiff-65535-entries", [.. "II*\0"u8, .. Little(8), 0xFF, 0xFF], "TIFF directory of 65535 entries"),
        ("webp-no-frame", Riff([.. "ICCP"u8, .. Little(2), 0, 0]), "WebP without a VP8X, VP8 or VP8L chunk"),
        ("bmp-zero-width", [.. "BM"u8, .. new byte[12], .. Little(40), .. Little(0), .. Little(5), .. Little16(1), .. Little16(24), .. new byte[24]], "BMP size 0x5"),
    ];

    public static TheoryData<string, byte[], string> NotImages()
    {
        var data = new TheoryData<string, byte[], string>();
        foreach (var (id, bytes, expected) in NotImageCases()) data.Add(id, bytes, expected);
        return data;
    }

    [Theory]
    [MemberData(nameof(NotImages))]
    public void ContentSegDoesNotReadIsRefusedBeforeOpenCv(string id, byte[] bytes, string expected)
    {
        var path = files.Write(id + ".png", bytes);
        var e = Assert.Throws<InvalidDataException>(() => ImageFiles.ReadHeader(path));
        Assert.StartsWith(path + ": ", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void ColouriseNeedsNoTorchSharpAndPaintsIgnoredNegativeAndUnknownLabelsWhite()
    {
        using var labels = new Mat(1, 4, MatType.CV_32SC1);
        labels.SetArray(new[] { 0, 1, 255, -1 });
        using var painted = MaskColours.Colourise(labels, [(10, 20, 30), (40, 50, 60)]);
        Assert.Equal(new Vec3b(30, 20, 10), painted.At<Vec3b>(0, 0)); // BGR
        Assert.Equal(new Vec3b(60, 50, 40), painted.At<Vec3b>(0, 1));
        Assert.Equal(new Vec3b(255, 255, 255), painted.At<Vec3b>(0, 2));
        Assert.Equal(new Vec3b(255, 255, 255), painted.At<Vec3b>(0, 3));
        Assert.DoesNotContain(typeof(MaskColours).Assembly.GetReferencedAssemblies(), a => a.Name == "TorchSharp");
    }
}
