using System.Buffers;
using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using OpenCvSharp;
using Seg.Core;
using Seg.Core.Readers;

namespace Seg.Data.Imaging;

/// <summary>
/// Reads and writes palette ("indexed colour", PNG colour type 3) images as label maps.
/// OpenCV expands a palette PNG to BGR on read and cannot write one, but VOC-style masks store the class in the
/// palette index, so Seg decodes those files itself (PNG spec, ISO/IEC 15948: chunks, zlib IDAT, per-row filters).
/// </summary>
public static class PalettePng
{
    static readonly byte[] Signature = [137, 80, 78, 71, 13, 10, 26, 10];

    /// <summary>
    /// Decodes <paramref name="path"/> if it is a palette PNG: the indices as an HW <c>CV_8U</c> Mat and the
    /// palette as RGB triples. Returns false (and nulls) for any other file (grey PNG, JPEG, …).
    /// </summary>
    /// <remarks>
    /// The file is untrusted: every chunk's length is checked against the file and its CRC-32 verified, IHDR's
    /// fields are checked, the image's decoded size must fit <see cref="ReaderLimits.MaxDecompressedBytes"/> and what
    /// its compressed data can hold (deflate expands at most 1032-fold) before anything is allocated, the zlib stream
    /// must inflate to exactly the image's bytes, and its Adler-32 must match. A PNG of another colour type gets the
    /// IHDR checks and the size limit too (OpenCV decodes it), then false.
    /// </remarks>
    /// <exception cref="BadSampleException">The file is a PNG but corrupt, too large, or a palette PNG with a feature
    /// Seg does not read (interlacing).</exception>
    public static bool TryRead(string path, out Mat? indices, out (byte R, byte G, byte B)[]? palette)
    {
        indices = null;
        palette = null;
        byte[] data;
        try { data = File.ReadAllBytes(path); }
        catch (IOException e) { throw new BadSampleException(path, $"cannot read file: {e.Message}", e); }
        if (data.Length < 8 || !data.AsSpan(0, 8).SequenceEqual(Signature)) return false;

        var ihdr = Ihdr.Parse(path, data);
        if (ihdr.ColourType != 3)
        {
            CheckDecodedSize(path, ihdr.Width, ihdr.Height, ihdr.DecodedBytesPerPixel);
            return false;
        }
        if (ihdr.BitDepth is not (1 or 2 or 4 or 8)) throw Corrupt(path, $"palette image with bit depth {ihdr.BitDepth}");
        if (ihdr.Interlace != 0) throw new BadSampleException(path, "interlaced palette PNGs are not supported; re-save it without interlacing");

        var (plte, idat) = Chunks(path, data);
        palette = plte;
        long stride = ((long)ihdr.Width * ihdr.BitDepth + 7) / 8;
        long rawLength = (stride + 1) * ihdr.Height;
        CheckDecodedSize(path, ihdr.Width, ihdr.Height, 1);
        if (rawLength > ReaderLimits.MaxDecompressedBytes || rawLength > Array.MaxLength)
            throw Corrupt(path, $"{ihdr.Width}x{ihdr.Height} pixels at {ihdr.BitDepth} bits need {ReaderLimits.DescribeBytes(rawLength)} of image data, beyond the decode limit of {ReaderLimits.DescribeBytes(ReaderLimits.MaxDecompressedBytes)}");
        if (rawLength > ReaderLimits.InflateBound(idat.Length))
            throw Corrupt(path, $"its {idat.Length} bytes of IDAT data cannot inflate to the {rawLength} bytes that {ihdr.Width}x{ihdr.Height} pixels need (deflate expands at most {ReaderLimits.DeflateMaxRatio}-fold): the IHDR size or the data is wrong");

        // Pooled: a VOC mask inflates to ~190 KB, and the loader decodes one per sample.
        var raw = ArrayPool<byte>.Shared.Rent((int)rawLength);
        try
        {
            Inflate(path, idat, raw.AsSpan(0, (int)rawLength));
            indices = new Mat(ihdr.Height, ihdr.Width, MatType.CV_8UC1);
            try { Unfilter(raw, (int)stride, ihdr.Height, ihdr.Width, ihdr.BitDepth, indices, path); }
            catch { indices.Dispose(); indices = null; throw; }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(raw);
        }
        return true;
    }

    /// <summary>
    /// Refuses an image whose decoded size (<paramref name="bytesPerPixel"/> per pixel) is beyond
    /// <see cref="ReaderLimits.MaxDecompressedBytes"/>; for every image reader, before the decoder allocates.
    /// </summary>
    internal static void CheckDecodedSize(string path, long width, long height, int bytesPerPixel)
    {
        long bytes = width * height * bytesPerPixel; // width, height < 2^31 and bytesPerPixel ≤ 8: no overflow
        if (bytes > ReaderLimits.MaxDecompressedBytes)
            throw new BadSampleException(path, $"image declares {width}x{height} pixels ({ReaderLimits.DescribeBytes(bytes)} decoded), beyond the decode limit of " +
                $"{ReaderLimits.DescribeBytes(ReaderLimits.MaxDecompressedBytes)} (ReaderLimits.MaxDecompressedBytes or {ReaderLimits.MaxDecompressedBytesVariable} raise it)");
    }

    /// <summary>The IHDR chunk (always the first): checked length, CRC and field values.</summary>
    internal readonly record struct Ihdr(int Width, int Height, int BitDepth, int ColourType, int Interlace)
    {
        /// <summary>Bytes per pixel once a decoder expands it (OpenCV: up to 4 channels of up to 16 bits).</summary>
        public int DecodedBytesPerPixel => (ColourType switch { 0 => 1, 2 => 3, 3 => 3, 4 => 2, _ => 4 }) * (BitDepth == 16 ? 2 : 1);

        public static Ihdr Parse(string path, byte[] data)
        {
            if (data.Length < 33) throw Corrupt(path, $"file is {data.Length} bytes, too short for the IHDR chunk");
            uint length = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(8));
            if (!data.AsSpan(12, 4).SequenceEqual("IHDR"u8)) throw Corrupt(path, "first chunk is not IHDR");
            if (length != 13) throw Corrupt(path, $"IHDR chunk declares {length} bytes, not 13");
            CheckCrc(path, data, 8, 13, "IHDR");
            long width = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(16));
            long height = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(20));
            int bitDepth = data[24], colourType = data[25], compression = data[26], filter = data[27], interlace = data[28];
            if (width is 0 or > int.MaxValue || height is 0 or > int.MaxValue)
                throw Corrupt(path, $"IHDR declares width {width} and height {height} (each must be 1 to 2^31-1)");
            bool depthOk = colourType switch
            {
                0 => bitDepth is 1 or 2 or 4 or 8 or 16,
                3 => bitDepth is 1 or 2 or 4 or 8,
                2 or 4 or 6 => bitDepth is 8 or 16,
                _ => false,
            };
            if (!depthOk) throw Corrupt(path, $"IHDR declares colour type {colourType} with bit depth {bitDepth}");
            if (compression != 0 || filter != 0 || interlace > 1)
                throw Corrupt(path, $"IHDR declares compression {compression}, filter {filter}, interlace {interlace}");
            return new Ihdr((int)width, (int)height, bitDepth, colourType, interlace);
        }
    }

    /// <summary>Walks the chunks after IHDR (lengths and CRCs checked): the palette and the concatenated IDAT data.</summary>
    static ((byte R, byte G, byte B)[] Palette, byte[] Idat) Chunks(string path, byte[] data)
    {
        (byte R, byte G, byte B)[]? palette = null;
        var idat = new List<(int Offset, int Length)>();
        bool idatEnded = false;
        int pos = 33;
        while (true)
        {
            if (pos + 12 > data.Length) throw Corrupt(path, $"no IEND chunk: the file ends at byte {data.Length}, inside or before a chunk header (truncated)");
            uint length = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(pos));
            var typeBytes = data.AsSpan(pos + 4, 4);
            string type = Encoding.ASCII.GetString(typeBytes);
            foreach (var b in typeBytes)
                if (!char.IsAsciiLetter((char)b)) throw Corrupt(path, $"chunk at byte {pos} has type bytes {Convert.ToHexString(typeBytes)}, not four letters");
            if (length > int.MaxValue) throw Corrupt(path, $"chunk {type} at byte {pos} declares {length} bytes (at most 2^31-1)");
            if (length > data.Length - pos - 12)
                throw Corrupt(path, $"chunk {type} at byte {pos} declares {length} bytes, {Math.Max(0, data.Length - pos - 12)} remain (truncated)");
            CheckCrc(path, data, pos, (int)length, type);
            var body = data.AsSpan(pos + 8, (int)length);
            switch (type)
            {
                case "IHDR": throw Corrupt(path, $"second IHDR chunk at byte {pos}");
                case "PLTE":
                    if (palette is not null) throw Corrupt(path, $"second PLTE chunk at byte {pos}");
                    if (idat.Count > 0) throw Corrupt(path, "PLTE chunk after the image data");
                    if (length == 0 || length % 3 != 0 || length > 768) throw Corrupt(path, $"PLTE chunk of {length} bytes (must be 3 to 768, a multiple of 3)");
                    palette = new (byte, byte, byte)[length / 3];
                    for (int i = 0; i < palette.Length; i++) palette[i] = (body[3 * i], body[3 * i + 1], body[3 * i + 2]);
                    break;
                case "IDAT":
                    if (idatEnded) throw Corrupt(path, $"IDAT chunk at byte {pos} after other chunks followed the image data (IDAT chunks must be consecutive)");
                    idat.Add((pos + 8, (int)length));
                    break;
                case "IEND":
                    if (palette is null) throw Corrupt(path, "palette PNG without a PLTE chunk");
                    if (idat.Count == 0) throw Corrupt(path, "no IDAT chunk");
                    return (palette, Concat(data, idat));
                default:
                    if (char.IsAsciiLetterUpper(type[0])) throw Corrupt(path, $"unknown critical chunk '{type}' at byte {pos}");
                    idatEnded |= idat.Count > 0;
                    break;
            }
            if (type != "IDAT") idatEnded |= idat.Count > 0;
            pos += 12 + (int)length;
        }
    }

    static byte[] Concat(byte[] data, List<(int Offset, int Length)> parts)
    {
        var all = new byte[parts.Sum(p => (long)p.Length)];
        int at = 0;
        foreach (var (offset, length) in parts)
        {
            Buffer.BlockCopy(data, offset, all, at, length);
            at += length;
        }
        return all;
    }

    static void CheckCrc(string path, byte[] data, int chunkStart, int length, string type)
    {
        uint stored = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(chunkStart + 8 + length));
        uint actual = System.IO.Hashing.Crc32.HashToUInt32(data.AsSpan(chunkStart + 4, 4 + length));
        if (stored != actual)
            throw Corrupt(path, $"chunk {type} at byte {chunkStart} fails its CRC check (stored {stored:x8}, computed {actual:x8})");
    }

    /// <summary>Inflates the zlib stream into exactly <paramref name="raw"/>: header checked, no bytes missing, none
    /// extra, Adler-32 matching.</summary>
    static void Inflate(string path, byte[] zlib, Span<byte> raw)
    {
        if (zlib.Length < 6) throw Corrupt(path, $"image data is {zlib.Length} bytes, too short for a zlib stream");
        int cmf = zlib[0], flg = zlib[1];
        if ((cmf & 0x0F) != 8 || cmf >> 4 > 7 || (cmf * 256 + flg) % 31 != 0 || (flg & 0x20) != 0)
            throw Corrupt(path, $"image data does not start with a zlib deflate header (bytes {cmf:x2} {flg:x2})");
        try
        {
            using var z = new DeflateStream(new MemoryStream(zlib, 2, zlib.Length - 2), CompressionMode.Decompress);
            int n = z.ReadAtLeast(raw, raw.Length, throwOnEndOfStream: false);
            if (n < raw.Length) throw Corrupt(path, $"image data inflates to {n} bytes, not the {raw.Length} the image needs (truncated or wrong size)");
            if (z.ReadByte() >= 0) throw Corrupt(path, $"image data inflates to more than the {raw.Length} bytes the image needs");
        }
        catch (InvalidDataException e)
        {
            throw Corrupt(path, $"image data is corrupt ({e.Message})");
        }
        uint stored = BinaryPrimitives.ReadUInt32BigEndian(zlib.AsSpan(zlib.Length - 4));
        uint actual = Adler32(raw);
        if (stored != actual) throw Corrupt(path, $"image data fails its zlib Adler-32 check (stored {stored:x8}, computed {actual:x8})");
    }

    /// <summary>Adler-32 (RFC 1950): two sums mod 65521, folded every 5552 bytes so that they cannot overflow.</summary>
    internal static uint Adler32(ReadOnlySpan<byte> data)
    {
        const uint Mod = 65521;
        uint a = 1, b = 0;
        while (data.Length > 0)
        {
            int n = Math.Min(data.Length, 5552);
            foreach (var x in data[..n]) { a += x; b += a; }
            a %= Mod;
            b %= Mod;
            data = data[n..];
        }
        return b << 16 | a;
    }

    static unsafe void Unfilter(byte[] raw, int stride, int height, int width, int bitDepth, Mat indices, string path)
    {
        var prior = new byte[stride];
        var row = new byte[stride];
        for (int y = 0; y < height; y++)
        {
            int filter = raw[(long)y * (stride + 1)];
            Array.Copy(raw, (long)y * (stride + 1) + 1, row, 0, stride);
            // One byte per pixel for depths ≤ 8, so the "bytes per complete pixel" of the spec is 1.
            switch (filter)
            {
                case 0: break;
                case 1: for (int i = 1; i < stride; i++) row[i] += row[i - 1]; break;
                case 2: for (int i = 0; i < stride; i++) row[i] += prior[i]; break;
                case 3:
                    for (int i = 0; i < stride; i++) row[i] += (byte)(((i > 0 ? row[i - 1] : 0) + prior[i]) >> 1);
                    break;
                case 4:
                    for (int i = 0; i < stride; i++) row[i] += Paeth(i > 0 ? row[i - 1] : (byte)0, prior[i], i > 0 ? prior[i - 1] : (byte)0);
                    break;
                default: throw Corrupt(path, $"row {y} has unknown filter type {filter}");
            }
            byte* dst = (byte*)indices.Ptr(y);
            if (bitDepth == 8) row.AsSpan(0, width).CopyTo(new Span<byte>(dst, width));
            else
            {
                int perByte = 8 / bitDepth, mask = (1 << bitDepth) - 1;
                for (int x = 0; x < width; x++)
                    dst[x] = (byte)((row[x / perByte] >> (8 - bitDepth * (x % perByte + 1))) & mask);
            }
            (prior, row) = (row, prior);
        }
    }

    static byte Paeth(byte a, byte b, byte c)
    {
        int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }

    static BadSampleException Corrupt(string path, string what) => new(path, $"corrupt palette PNG: {what}");

    /// <summary>
    /// Writes an HW <c>CV_8U</c> label map as an 8-bit palette PNG (the VOC mask format): pixel value = palette
    /// index, <paramref name="palette"/> padded with black to 256 entries.
    /// </summary>
    public static unsafe void Write(string path, Mat labels, IReadOnlyList<(byte R, byte G, byte B)> palette)
    {
        if (labels.Type() != MatType.CV_8UC1)
            throw new ArgumentException($"labels must be CV_8UC1, got {labels.Type()}", nameof(labels));
        if (palette.Count > 256) throw new ArgumentException("a PNG palette holds at most 256 colours", nameof(palette));
        int width = labels.Cols, height = labels.Rows;
        using var file = File.Create(path);
        file.Write(Signature);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = 8;   // bit depth
        ihdr[9] = 3;   // colour type: palette
        WriteChunk(file, "IHDR", ihdr);
        var plte = new byte[256 * 3];
        for (int i = 0; i < palette.Count; i++) (plte[3 * i], plte[3 * i + 1], plte[3 * i + 2]) = palette[i];
        WriteChunk(file, "PLTE", plte);
        using var compressed = new MemoryStream();
        using (var z = new ZLibStream(compressed, CompressionLevel.Fastest, leaveOpen: true))
        {
            var row = new byte[width + 1]; // filter byte 0 (none) + indices
            for (int y = 0; y < height; y++)
            {
                new ReadOnlySpan<byte>((byte*)labels.Ptr(y), width).CopyTo(row.AsSpan(1));
                z.Write(row);
            }
        }
        WriteChunk(file, "IDAT", compressed.ToArray());
        WriteChunk(file, "IEND", []);
    }

    static void WriteChunk(Stream s, string type, byte[] body)
    {
        Span<byte> head = stackalloc byte[8];
        BinaryPrimitives.WriteInt32BigEndian(head, body.Length);
        Encoding.ASCII.GetBytes(type, head[4..]);
        s.Write(head);
        s.Write(body);
        var crc = new System.IO.Hashing.Crc32();
        crc.Append(head[4..]);
        crc.Append(body);
        Span<byte> tail = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(tail, crc.GetCurrentHashAsUInt32());
        s.Write(tail);
    }
}
