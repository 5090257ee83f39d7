using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using OpenCvSharp;

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
    /// <exception cref="BadSampleException">The file is a palette PNG but corrupt or uses a feature Seg does not
    /// read (interlacing).</exception>
    public static bool TryRead(string path, out Mat? indices, out (byte R, byte G, byte B)[]? palette)
    {
        indices = null;
        palette = null;
        byte[] data;
        try { data = File.ReadAllBytes(path); }
        catch (IOException e) { throw new BadSampleException(path, $"cannot read file: {e.Message}", e); }
        if (data.Length < 33 || !data.AsSpan(0, 8).SequenceEqual(Signature)) return false;
        // IHDR is always the first chunk: width, height, bit depth, colour type, compression, filter, interlace.
        if (Encoding.ASCII.GetString(data, 12, 4) != "IHDR") throw Corrupt(path, "first chunk is not IHDR");
        int width = BinaryPrimitives.ReadInt32BigEndian(data.AsSpan(16));
        int height = BinaryPrimitives.ReadInt32BigEndian(data.AsSpan(20));
        int bitDepth = data[24], colourType = data[25], interlace = data[28];
        if (colourType != 3) return false;
        if (width <= 0 || height <= 0 || bitDepth is not (1 or 2 or 4 or 8))
            throw Corrupt(path, $"IHDR has width {width}, height {height}, bit depth {bitDepth}");
        if (interlace != 0) throw new BadSampleException(path, "interlaced palette PNGs are not supported; re-save it without interlacing");

        using var idat = new MemoryStream();
        int pos = 8;
        while (pos + 12 <= data.Length)
        {
            int length = BinaryPrimitives.ReadInt32BigEndian(data.AsSpan(pos));
            string type = Encoding.ASCII.GetString(data, pos + 4, 4);
            if (length < 0 || pos + 12 + (long)length > data.Length) throw Corrupt(path, $"chunk {type} runs past the end of the file");
            var body = data.AsSpan(pos + 8, length);
            if (type == "PLTE")
            {
                palette = new (byte, byte, byte)[length / 3];
                for (int i = 0; i < palette.Length; i++) palette[i] = (body[3 * i], body[3 * i + 1], body[3 * i + 2]);
            }
            else if (type == "IDAT") idat.Write(body);
            else if (type == "IEND") break;
            pos += 12 + length;
        }
        if (palette is null) throw Corrupt(path, "palette PNG without a PLTE chunk");
        if (idat.Length == 0) throw Corrupt(path, "no IDAT chunk");

        int stride = (width * bitDepth + 7) / 8;
        var raw = new byte[(long)(stride + 1) * height];
        idat.Position = 0;
        try
        {
            using var z = new ZLibStream(idat, CompressionMode.Decompress);
            z.ReadExactly(raw);
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException)
        {
            throw Corrupt(path, $"image data is truncated or corrupt ({e.Message})");
        }
        indices = new Mat(height, width, MatType.CV_8UC1);
        try { Unfilter(raw, stride, height, width, bitDepth, indices, path); }
        catch { indices.Dispose(); indices = null; throw; }
        return true;
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
        uint crc = Crc32.Update(Crc32.Update(0xFFFFFFFFu, head[4..]), body) ^ 0xFFFFFFFFu;
        Span<byte> tail = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(tail, crc);
        s.Write(tail);
    }

    /// <summary>CRC-32 (ISO-HDLC polynomial 0xEDB88320) as the PNG chunk trailer needs it.</summary>
    static class Crc32
    {
        static readonly uint[] Table = Enumerable.Range(0, 256).Select(n =>
        {
            uint c = (uint)n;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            return c;
        }).ToArray();

        public static uint Update(uint crc, ReadOnlySpan<byte> bytes)
        {
            foreach (var b in bytes) crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
            return crc;
        }
    }
}
