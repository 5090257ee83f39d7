using System.Buffers.Binary;
using System.Globalization;
using OpenCvSharp;
using Seg.Platform.IO;
using Seg.Platform.Native;

namespace Seg.Onnx.Imaging;

/// <summary>
/// The one place where Seg opens image files (the datasets, <c>predict</c>, <see cref="OnnxSegmenter"/>): a regular
/// file only, a format whose header Seg reads (PNG, JPEG, BMP, TIFF, WebP, told by content as OpenCV tells them),
/// and the memory that the declared size will take, decoding and after, within a budget, all before OpenCV decodes
/// a byte. OpenCV sniffs the content whatever the file is called, and it would also decode formats whose size Seg
/// does not check (PNM, Sun raster, OpenEXR, HDR, JPEG 2000, …): those are refused.
/// </summary>
public static class ImageFiles
{
    /// <summary>Default memory budget of one image (decoding plus what the caller allocates per pixel): 1 GiB, the
    /// same as Seg.Core's <c>ReaderLimits.MaxDecompressedBytes</c>.</summary>
    public const long DefaultMaxBytes = 1L << 30;

    /// <summary>Image file extensions Seg picks up in folders (the formats of <see cref="ImageFileFormat"/>).</summary>
    public static readonly IReadOnlyList<string> Extensions = [".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"];

    // Header walks stop here: a JPEG's markers before its frame, a TIFF directory's entries, WebP's chunks.
    const int MaxJpegMarkers = 4096, MaxTiffEntries = 4096, MaxWebPChunks = 256;

    /// <summary>
    /// Reads <paramref name="path"/> with OpenCV after <see cref="Check"/>; a decoder failure comes out as an
    /// <see cref="InvalidDataException"/> naming the file.
    /// </summary>
    /// <param name="path">The image.</param>
    /// <param name="mode">OpenCV's read mode (<see cref="ImreadModes.Color"/> for images, <see cref="ImreadModes.Unchanged"/> for masks).</param>
    /// <param name="pipelineBytesPerPixel">What the caller allocates per pixel of this image after decoding (tensors,
    /// logits, resized copies), counted with the decode against <paramref name="maxBytes"/>.</param>
    /// <param name="maxBytes">The budget.</param>
    /// <param name="limitName">How the user raises the budget, for the message.</param>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="IOException">Not a regular file, or unreadable.</exception>
    /// <exception cref="InvalidDataException">Not a PNG, JPEG, BMP, TIFF or WebP; a corrupt header; over the budget;
    /// or OpenCV cannot decode it.</exception>
    /// <exception cref="NativeLoadException">OpenCV's native library does not load on this host (see <see cref="HeadlessOpenCv"/>).</exception>
    public static Mat Read(string path, ImreadModes mode, long pipelineBytesPerPixel, long maxBytes, string limitName)
    {
        Check(path, OutputBytesPerPixel(mode), pipelineBytesPerPixel, maxBytes, limitName);
        HeadlessOpenCv.EnsureLoaded();
        Mat image;
        try { image = Cv2.ImRead(path, mode); }
        catch (OpenCVException e) { throw new InvalidDataException($"{path}: OpenCV cannot decode the image: {FirstLine(e.Message)}", e); }
        if (image.Empty())
        {
            image.Dispose();
            throw new InvalidDataException($"{path}: OpenCV cannot decode the image ({new FileInfo(path).Length} bytes; corrupt or truncated).");
        }
        return image;
    }

    /// <summary>
    /// Refuses <paramref name="path"/> unless it is a regular file in a format Seg reads whose declared size, at
    /// <paramref name="outputBytesPerPixel"/> decoded plus what the decoder holds
    /// (<see cref="ImageHeader.DecodeBytesPerPixel"/>) plus <paramref name="pipelineBytesPerPixel"/>, fits
    /// <paramref name="maxBytes"/>. Returns the header.
    /// </summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="IOException">Not a regular file, or unreadable.</exception>
    /// <exception cref="InvalidDataException">Unknown format, corrupt header, or over the budget (names the file,
    /// its size and the budget).</exception>
    public static ImageHeader Check(string path, int outputBytesPerPixel, long pipelineBytesPerPixel, long maxBytes, string limitName)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(pipelineBytesPerPixel);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxBytes);
        var header = ReadHeader(path);
        long perPixel = outputBytesPerPixel + header.DecodeBytesPerPixel + pipelineBytesPerPixel;
        // Width and height are below 2^32 each: the pixel count fits a long; the product with perPixel may not.
        long pixels = header.Pixels;
        if (pixels == 0) throw new InvalidDataException($"{path}: the {Name(header.Format)} header declares an empty {header.Width}x{header.Height} image.");
        if (pixels > maxBytes / perPixel)
            throw new InvalidDataException(
                $"{path}: the {Name(header.Format)} header declares {header.Width}x{header.Height} pixels; decoding and processing them takes " +
                $"{perPixel} bytes per pixel ({Describe((double)pixels * perPixel)}), beyond the image memory limit of {Describe(maxBytes)} ({limitName}).");
        return header;
    }

    /// <summary>The 8-bit result's bytes per pixel in <paramref name="mode"/> (4: up to 16-bit 2-channel, or BGRA).</summary>
    static int OutputBytesPerPixel(ImreadModes mode) => mode switch
    {
        ImreadModes.Grayscale => 1,
        ImreadModes.Color => 3,
        _ => 8, // unchanged: up to 16-bit RGBA
    };

    /// <summary>Reads the format and declared size from the file's first bytes, without decoding.</summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="IOException">Not a regular file, or unreadable.</exception>
    /// <exception cref="InvalidDataException">Not a PNG, JPEG, BMP, TIFF or WebP, or a header that does not hold.</exception>
    public static ImageHeader ReadHeader(string path)
    {
        FileChecks.RequireRegularFile(path, "image");
        using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 4096);
        Span<byte> head = stackalloc byte[32];
        head = head[..f.ReadAtLeast(head, head.Length, throwOnEndOfStream: false)];
        var reader = new HeaderReader(path, f);
        if (head.StartsWith((ReadOnlySpan<byte>)[137, 80, 78, 71, 13, 10, 26, 10])) return Png(reader, head);
        if (head.Length >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF) return Jpeg(reader);
        if (head.StartsWith("BM"u8)) return Bmp(reader, head);
        if (head.StartsWith("II*\0"u8) || head.StartsWith("MM\0*"u8) || head.StartsWith("II+\0"u8) || head.StartsWith("MM\0+"u8)) return Tiff(reader, head);
        if (head.Length >= 12 && head.StartsWith("RIFF"u8) && head[8..12].SequenceEqual("WEBP"u8)) return WebP(reader);
        throw new InvalidDataException($"{path}: not a PNG, JPEG, BMP, TIFF or WebP image (first bytes {Convert.ToHexString(head[..Math.Min(8, head.Length)])}); " +
            "Seg reads those formats only, whatever the file is called.");
    }

    static ImageHeader Png(HeaderReader r, ReadOnlySpan<byte> head)
    {
        // Signature, then IHDR: length 13, "IHDR", width, height, bit depth, colour type (ISO/IEC 15948, 11.2.2).
        if (head.Length < 26 || BinaryPrimitives.ReadUInt32BigEndian(head[8..]) != 13 || !head[12..16].SequenceEqual("IHDR"u8))
            throw r.Corrupt("PNG without an IHDR chunk first");
        long width = BinaryPrimitives.ReadUInt32BigEndian(head[16..]), height = BinaryPrimitives.ReadUInt32BigEndian(head[20..]);
        int depth = head[24], colourType = head[25];
        if (colourType is not (0 or 2 or 3 or 4 or 6)) throw r.Corrupt($"PNG colour type {colourType}");
        if (depth is not (1 or 2 or 4 or 8 or 16)) throw r.Corrupt($"PNG bit depth {depth}");
        if (width is 0 or > int.MaxValue || height is 0 or > int.MaxValue) throw r.Corrupt($"PNG size {width}x{height}");
        // libpng expands palettes and strips or keeps 16-bit samples row by row, into the result.
        return new(ImageFileFormat.Png, width, height, 0);
    }

    static ImageHeader Jpeg(HeaderReader r)
    {
        // Markers from offset 2 up to the first start-of-frame (T.81, B.2): FF, code, then a 2-byte length for all
        // but RSTn, SOI, TEM; scan data before a frame is corrupt.
        long position = 2;
        for (int markers = 0; markers < MaxJpegMarkers; markers++)
        {
            var b = r.Bytes(position, 2, "JPEG marker");
            if (b[0] != 0xFF) throw r.Corrupt($"JPEG marker expected at offset {position}");
            int marker = b[1];
            position += 2;
            if (marker == 0xFF) { position--; continue; } // fill byte
            if (marker is 0x01 or 0xD8 or (>= 0xD0 and <= 0xD7)) continue;
            if (marker is 0xD9 or 0xDA) throw r.Corrupt("JPEG without a frame header before its scan data");
            int length = BinaryPrimitives.ReadUInt16BigEndian(r.Bytes(position, 2, "JPEG segment length"));
            if (length < 2) throw r.Corrupt($"JPEG segment length {length} at offset {position}");
            if (marker is >= 0xC0 and <= 0xCF and not 0xC4 and not 0xC8 and not 0xCC)
            {
                var sof = r.Bytes(position + 2, 6, "JPEG frame header");
                long height = BinaryPrimitives.ReadUInt16BigEndian(sof[1..]), width = BinaryPrimitives.ReadUInt16BigEndian(sof[3..]);
                int components = sof[5];
                if (width == 0 || height == 0) throw r.Corrupt($"JPEG frame size {width}x{height} (a height of 0 is defined later by DNL, which Seg does not read)");
                if (components is 0 or > 4) throw r.Corrupt($"JPEG with {components} components");
                // Progressive and lossless-hierarchical frames keep every coefficient (2 bytes) of every component.
                bool wholeImageBuffered = marker is 0xC2 or 0xC6 or 0xCA or 0xCE or 0xC3 or 0xC7 or 0xCB or 0xCF;
                return new(ImageFileFormat.Jpeg, width, height, wholeImageBuffered ? 2 * components : 0);
            }
            position += length;
        }
        throw r.Corrupt($"JPEG with no frame header in its first {MaxJpegMarkers} markers");
    }

    static ImageHeader Bmp(HeaderReader r, ReadOnlySpan<byte> head)
    {
        if (head.Length < 26) throw r.Corrupt("BMP shorter than its headers");
        uint infoSize = BinaryPrimitives.ReadUInt32LittleEndian(head[14..]);
        long width, height;
        int bits;
        if (infoSize == 12) // OS/2 BITMAPCOREHEADER: 16-bit sizes
        {
            width = BinaryPrimitives.ReadUInt16LittleEndian(head[18..]);
            height = BinaryPrimitives.ReadUInt16LittleEndian(head[20..]);
            bits = BinaryPrimitives.ReadUInt16LittleEndian(head[24..]);
        }
        else if (infoSize >= 40)
        {
            width = Math.Abs((long)BinaryPrimitives.ReadInt32LittleEndian(head[18..]));
            height = Math.Abs((long)BinaryPrimitives.ReadInt32LittleEndian(head[22..])); // negative: top-down rows
            bits = BinaryPrimitives.ReadUInt16LittleEndian(r.Bytes(28, 2, "BMP bit count"));
        }
        else throw r.Corrupt($"BMP info header of {infoSize} bytes");
        if (width == 0 || height == 0) throw r.Corrupt($"BMP size {width}x{height}");
        if (bits is not (1 or 4 or 8 or 16 or 24 or 32)) throw r.Corrupt($"BMP with {bits} bits per pixel");
        return new(ImageFileFormat.Bmp, width, height, 0); // decoded row by row into the result
    }

    static ImageHeader Tiff(HeaderReader r, ReadOnlySpan<byte> head)
    {
        bool little = head[0] == (byte)'I', big = head[2] == 43 || head[3] == 43; // BigTIFF: version 43, 8-byte offsets
        ulong U(ReadOnlySpan<byte> b, int bytes) => bytes switch
        {
            2 => little ? BinaryPrimitives.ReadUInt16LittleEndian(b) : BinaryPrimitives.ReadUInt16BigEndian(b),
            4 => little ? BinaryPrimitives.ReadUInt32LittleEndian(b) : BinaryPrimitives.ReadUInt32BigEndian(b),
            _ => little ? BinaryPrimitives.ReadUInt64LittleEndian(b) : BinaryPrimitives.ReadUInt64BigEndian(b),
        };
        if (head.Length < (big ? 16 : 8)) throw r.Corrupt("TIFF shorter than its header");
        ulong ifd = big ? U(head[8..], 8) : U(head[4..], 4);
        if (ifd > (ulong)r.Length) throw r.Corrupt($"TIFF image directory at offset {ifd}, past the end of the file");
        int countBytes = big ? 8 : 2, entryBytes = big ? 20 : 12, valueBytes = big ? 8 : 4;
        ulong count = U(r.Bytes((long)ifd, countBytes, "TIFF directory"), countBytes);
        if (count is 0 or > MaxTiffEntries) throw r.Corrupt($"TIFF directory of {count} entries");
        long width = -1, height = -1, samples = 1, bits = 1;
        var entries = r.Bytes((long)ifd + countBytes, (int)count * entryBytes, "TIFF directory entries");
        for (int i = 0; i < (int)count; i++)
        {
            int e = i * entryBytes, v = e + 4 + valueBytes;
            int tag = (int)U(entries.AsSpan(e), 2), type = (int)U(entries.AsSpan(e + 2), 2);
            ulong n = U(entries.AsSpan(e + 4), valueBytes);
            // SHORT (3), LONG (4) or LONG8 (16) values that fit the entry: the first one is at the value's start.
            long first = type switch
            {
                3 => (long)U(entries.AsSpan(v), 2),
                4 => (long)U(entries.AsSpan(v), 4),
                16 when big => (long)Math.Min(U(entries.AsSpan(v), 8), long.MaxValue),
                _ => -1,
            };
            if (tag is 256 or 257 or 258 or 277 && first < 0) throw r.Corrupt($"TIFF tag {tag} of type {type}");
            switch (tag)
            {
                case 256: width = first; break;
                case 257: height = first; break;
                case 277: samples = first; break;
                // More depths than fit the entry are stored at the offset it holds; they are equal in practice.
                case 258: bits = type != 3 ? 64 : n * 2 <= (ulong)valueBytes ? first : (long)U(r.Bytes((long)Math.Min(U(entries.AsSpan(v), valueBytes), long.MaxValue), 2, "TIFF BitsPerSample"), 2); break;
            }
        }
        if (width <= 0 || height <= 0 || width > uint.MaxValue || height > uint.MaxValue)
            throw r.Corrupt(width < 0 || height < 0 ? "TIFF without ImageWidth and ImageLength" : $"TIFF size {width}x{height}");
        if (samples is < 1 or > 16 || bits is < 1 or > 64) throw r.Corrupt($"TIFF with {samples} samples of {bits} bits");
        return new(ImageFileFormat.Tiff, width, height, (int)(samples * ((bits + 7) / 8)));
    }

    static ImageHeader WebP(HeaderReader r)
    {
        // RIFF chunks from offset 12 (RFC 9649): VP8X holds the canvas, VP8 / VP8L a frame; the decoder holds the
        // canvas as RGBA (animations included), so every size found is checked, the largest kept.
        long position = 12, width = 0, height = 0;
        for (int chunks = 0; chunks < MaxWebPChunks && position + 8 <= r.Length; chunks++)
        {
            var chunk = r.Bytes(position, 8, "WebP chunk header");
            uint size = BinaryPrimitives.ReadUInt32LittleEndian(chunk.AsSpan(4));
            var fourCc = chunk.AsSpan(0, 4);
            (long W, long H)? found = null;
            if (fourCc.SequenceEqual("VP8X"u8))
            {
                var d = r.Bytes(position + 8, 10, "WebP VP8X chunk");
                found = (1 + (d[4] | d[5] << 8 | d[6] << 16), 1 + (d[7] | d[8] << 8 | d[9] << 16));
            }
            else if (fourCc.SequenceEqual("VP8 "u8))
            {
                var d = r.Bytes(position + 8, 10, "WebP VP8 frame header");
                if (d[3] != 0x9D || d[4] != 0x01 || d[5] != 0x2A) throw r.Corrupt("WebP VP8 frame without its start code");
                found = (BinaryPrimitives.ReadUInt16LittleEndian(d.AsSpan(6)) & 0x3FFF, BinaryPrimitives.ReadUInt16LittleEndian(d.AsSpan(8)) & 0x3FFF);
            }
            else if (fourCc.SequenceEqual("VP8L"u8))
            {
                var d = r.Bytes(position + 8, 5, "WebP VP8L header");
                if (d[0] != 0x2F) throw r.Corrupt("WebP VP8L frame without its signature");
                uint bits = BinaryPrimitives.ReadUInt32LittleEndian(d.AsSpan(1));
                found = (1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF));
            }
            if (found is var (w, h))
            {
                if (w == 0 || h == 0) throw r.Corrupt($"WebP size {w}x{h}");
                if (w * h > width * height) (width, height) = (w, h);
                if (fourCc[3] != (byte)'X') break; // the first frame: the decoder needs no more to size its buffers
            }
            position += 8 + size + (size & 1); // chunks are padded to even sizes
        }
        if (width == 0) throw r.Corrupt("WebP without a VP8X, VP8 or VP8L chunk");
        return new(ImageFileFormat.WebP, width, height, 4);
    }

    static string Name(ImageFileFormat format) => format == ImageFileFormat.WebP ? "WebP" : format.ToString().ToUpperInvariant();

    static string Describe(double bytes) => bytes >= 1L << 30
        ? $"{(bytes / (1L << 30)).ToString("0.#", CultureInfo.InvariantCulture)} GiB"
        : $"{(bytes / (1L << 20)).ToString("0.#", CultureInfo.InvariantCulture)} MiB";

    static string FirstLine(string s) => s.Split('\n', 2)[0].Trim();

    /// <summary>Bounded reads at offsets of a header, with errors that name the file.</summary>
    sealed class HeaderReader(string path, FileStream stream)
    {
        public long Length { get; } = stream.Length;

        public byte[] Bytes(long offset, int count, string what)
        {
            if (offset < 0 || count < 0 || offset > Length - count)
                throw Corrupt($"{what} at offset {offset} runs past the end of the {Length}-byte file");
            var buffer = new byte[count];
            stream.Position = offset;
            stream.ReadExactly(buffer);
            return buffer;
        }

        public InvalidDataException Corrupt(string what) => new($"{path}: corrupt image header: {what}.");
    }
}
