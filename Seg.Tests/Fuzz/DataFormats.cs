using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using OpenCvSharp;
using Seg.Data;
using Seg.Data.Datasets;
using Seg.Data.Imaging;
using Seg.Models;

namespace Seg.Tests.Fuzz;

/// <summary>TorchSharp's own <c>Module.save</c> format (<c>.dat</c>) through <see cref="StateDict.Read"/>.</summary>
public sealed class DatFormat : IFuzzFormat
{
    public string Name => "dat";
    public string FileName => "case.dat";

    public IReadOnlyList<FuzzSeed> Seeds()
    {
        var bytes = FuzzFormats.Fixture("readers", "small.dat");
        return [new("small.dat", bytes, Varints(bytes))];
    }

    public string Read(string path) => FuzzFormats.Digest(StateDict.Read(path));

    /// <summary>Where the count, name lengths, dtype codes, ranks and dims are (walking the valid seed).</summary>
    static List<LengthField> Varints(byte[] b)
    {
        var fields = new List<LengthField>();
        int pos = 0;
        long Next(string what)
        {
            fields.Add(new(pos, 0, false, what));
            long v = 0;
            for (int shift = 0; ; shift += 7) { byte x = b[pos++]; v |= (long)(x & 0x7F) << shift; if (x < 0x80) return v; }
        }
        long count = Next("count");
        for (long i = 0; i < count; i++)
        {
            long nameLength = Next("namelen"); // not `pos += Next(..)`: that reads pos before Next moves it
            pos += (int)nameLength;
            long code = Next("dtype");
            long ndim = Next("ndim");
            long numel = 1;
            for (long d = 0; d < ndim; d++) numel *= Next("dim");
            pos += (int)(numel * code switch { 4 or 7 => 8, 6 => 4, 5 => 2, _ => 1 });
        }
        return fields;
    }

    public static byte[] Entry(string name, byte[] code, byte[][] dims, byte[] data, byte[]? nameLength = null)
    {
        var n = Encoding.UTF8.GetBytes(name);
        return [.. nameLength ?? Mutator.Leb128((ulong)n.Length), .. n, .. code, .. Mutator.Leb128((ulong)dims.Length), .. dims.SelectMany(d => d), .. data];
    }

    static byte[] L(ulong v) => Mutator.Leb128(v);

    public IEnumerable<FuzzCase> Crafted()
    {
        // The 23-byte file: one tensor whose dtype code is 1000.
        byte[] dtype1000 = [.. L(1), .. Entry("w", L(1000), [L(4)], new byte[16])];
        yield return new("dtype-1000", dtype1000);
        foreach (var code in new ulong[] { 8, 12, 13, 14, 16, 100, 127, 255, (ulong)long.MaxValue, ulong.MaxValue })
            yield return new($"dtype-{code}", [.. L(1), .. Entry("w", L(code), [L(4)], new byte[16])]);
        yield return new("dim-negative", [.. L(1), .. Entry("w", L(6), [L(ulong.MaxValue - 3)], new byte[16])]);
        yield return new("dim-2^63", [.. L(1), .. Entry("w", L(6), [L(1UL << 63)], new byte[16])]);
        yield return new("dims-overflow", [.. L(1), .. Entry("w", L(6), [L(1UL << 31), L(1UL << 31), L(1UL << 31)], new byte[16])]);
        yield return new("elements-2^62", [.. L(1), .. Entry("w", L(6), [L(1UL << 62)], new byte[16])]);
        yield return new("ndim-2^31", [.. L(1), .. L(1), (byte)'w', .. L(6), .. L(1UL << 31), .. new byte[16]]);
        yield return new("ndim-65", [.. L(1), .. Entry("w", L(6), Enumerable.Repeat(L(1), 65).ToArray(), new byte[4])]);
        yield return new("name-length-negative", [.. L(1), .. Entry("w", L(6), [L(1)], new byte[4], nameLength: L(ulong.MaxValue))]);
        yield return new("name-length-2^31", [.. L(1), .. Entry("w", L(6), [L(1)], new byte[4], nameLength: L(1UL << 31))]);
        yield return new("name-not-utf8", [.. L(1), .. L(2), 0xC3, 0x28, .. L(6), .. L(1), .. L(1), .. new byte[4]]);
        yield return new("repeated-name", [.. L(2), .. Entry("w", L(6), [L(1)], new byte[4]), .. Entry("w", L(6), [L(1)], new byte[4])]);
        yield return new("count-2^62", [.. L(1UL << 62), .. Entry("w", L(6), [L(1)], new byte[4])]);
        yield return new("count-negative", [.. L(ulong.MaxValue), .. Entry("w", L(6), [L(1)], new byte[4])]);
        yield return new("varint-11-bytes", [0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]);
        yield return new("data-short", [.. L(1), .. Entry("w", L(6), [L(4)], new byte[15])]);
        yield return new("trailing", [.. L(1), .. Entry("w", L(6), [L(4)], new byte[16]), 0]);
        yield return new("empty", []);
        yield return new("zero-entries", [0]);
    }
}

/// <summary><see cref="PalettePng.TryRead"/> on palette PNG masks, as raw bytes and (structured) with CRCs fixed.</summary>
public sealed class PalettePngFormat : IFuzzFormat
{
    public string Name => "png-palette";
    public string FileName => "case.png";

    public IReadOnlyList<FuzzSeed> Seeds() => Png.Seeds("mask_palette.png", "mask_palette4.png");

    public string Read(string path)
    {
        if (!PalettePng.TryRead(path, out var indices, out var palette)) return "not a palette PNG";
        using (indices) return Png.Digest(indices!) + FuzzFormats.Hash(string.Join(",", palette!));
    }

    public IEnumerable<FuzzCase> Structured(Random rng, int count) => Png.Structured(Seeds(), rng, count);

    public IEnumerable<FuzzCase> Crafted() => Png.Crafted();
}

/// <summary>A mask read by a <c>folder</c> dataset (error mode): the case is <c>masks/a.png</c> next to a good
/// image; reading sample 0 must give the sample or a <see cref="BadSampleException"/> naming the mask.</summary>
public sealed class MaskFormat(BadSampleMode mode) : IFuzzFormat
{
    public string Name => mode == BadSampleMode.Skip ? "mask-skip" : "mask";
    public string FileName => "masks/a.png";

    public IReadOnlyList<FuzzSeed> Seeds() => Png.Seeds("mask_palette.png", "mask_grey.png");

    /// <summary>In skip mode nothing may escape: the bad sample is skipped (the good one, b, comes back) and counted.</summary>
    public string Read(string path)
    {
        var root = Path.GetDirectoryName(Path.GetDirectoryName(path))!;
        var images = Directory.CreateDirectory(Path.Combine(root, "images")).FullName;
        var image = FuzzFormats.Fixture("readers", "image_rgb.png");
        File.WriteAllBytes(Path.Combine(images, "a.png"), image);
        File.WriteAllBytes(Path.Combine(images, "b.png"), image);
        File.WriteAllBytes(Path.Combine(root, "masks", "b.png"), FuzzFormats.Fixture("readers", "mask_grey.png"));
        var ds = (FolderDataset)DatasetFactory.Create(new DatasetOptions { Type = "folder", Root = root, NumClasses = 5, OnBadSample = mode });
        using var sample = ds.Get(0);
        if (mode == BadSampleMode.Skip && sample.Id == "b" && ds.BadSamples.Count != 1)
            throw new InvalidOperationException($"sample a was left out but {ds.BadSamples.Count} bad samples were counted");
        return $"{sample.Id}:{Png.Digest(sample.Mask)}";
    }

    public IEnumerable<FuzzCase> Structured(Random rng, int count) => Png.Structured(Seeds(), rng, count);

    public IEnumerable<FuzzCase> Crafted() => Png.Crafted().Concat(Png.HugeIhdr("mask-width-2^28", 1 << 28, 20, 8, 3));
}

/// <summary>Images through <see cref="SampleFiles.ReadImage"/> (OpenCV behind Seg's size check and error guard).</summary>
public sealed class ImageFormat : IFuzzFormat
{
    public string Name => "image";
    public string FileName => "case.img";

    public IReadOnlyList<FuzzSeed> Seeds()
    {
        var png = FuzzFormats.Fixture("readers", "image_rgb.png");
        var bmp = FuzzFormats.Fixture("readers", "image.bmp");
        // JPEG is not committed: OpenCV encodes the PNG fixture (libjpeg's output is the same for the same input).
        using var m = Cv2.ImDecode(png, ImreadModes.Color);
        var jpg = m.ImEncode(".jpg");
        return [new("image_rgb.png", png, Png.Fields(png)),
            new("image.bmp", bmp, [new(2, 4, false, "filesize"), new(10, 4, false, "offset"), new(14, 4, false, "headersize"),
                new(18, 4, false, "width"), new(22, 4, false, "height"), new(28, 2, false, "bpp"), new(34, 4, false, "imagesize")]),
            new("image.jpg", jpg, [])];
    }

    public string Read(string path)
    {
        using var image = SampleFiles.ReadImage(path);
        return $"{image.Cols}x{image.Rows}:{Png.Digest(image)}";
    }

    public IEnumerable<FuzzCase> Crafted()
    {
        foreach (var c in Png.HugeIhdr("rgb-2^15-square", 1 << 15, 1 << 15, 8, 2)) yield return c;
        foreach (var c in Png.HugeIhdr("rgba16-2^31-1-wide", int.MaxValue, 1, 16, 6)) yield return c;
        // BMP and JPEG headers declaring huge images.
        var bmp = FuzzFormats.Fixture("readers", "image.bmp");
        var big = (byte[])bmp.Clone();
        BinaryPrimitives.WriteInt32LittleEndian(big.AsSpan(18), 1 << 20);
        BinaryPrimitives.WriteInt32LittleEndian(big.AsSpan(22), -(1 << 20));
        yield return new("bmp-2^20-square", big);
        yield return new("jpeg-65535-square", [0xFF, 0xD8, 0xFF, 0xC0, 0, 11, 8, 0xFF, 0xFF, 0xFF, 0xFF, 1, 1, 0x11, 0, 0xFF, 0xD9]);
        // A TIFF declaring 2^31 x 2^31 pixels, refused from its image directory.
        yield return new("tiff-huge", Tiff(0x7FFF_FFFF, 0x7FFF_FFFF));
        yield return new("tiff-zero", Tiff(0, 0));
        yield return new("empty", []);
        yield return new("text", "not an image"u8.ToArray());
    }

    /// <summary>A minimal little-endian TIFF with one IFD: width, length, 8 bits, 1 sample, one strip of 4 bytes.</summary>
    static byte[] Tiff(uint width, uint height)
    {
        var ms = new MemoryStream();
        var w = new BinaryWriter(ms);
        w.Write("II"u8); w.Write((ushort)42); w.Write(8u);
        (ushort Tag, ushort Type, uint Value)[] tags = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 8 + 2 + 9 * 12 + 4), (277, 3, 1), (278, 4, height), (279, 4, 4)];
        w.Write((ushort)tags.Length);
        foreach (var (tag, type, value) in tags) { w.Write(tag); w.Write(type); w.Write(1u); w.Write(value); }
        w.Write(0u);
        w.Write(new byte[4]);
        return ms.ToArray();
    }
}

/// <summary>Fashion-MNIST IDX files through <see cref="FashionMnistIdx.Load"/>: the images file mutated next to a good
/// labels file, plain (<c>idx</c>), gzipped after mutation (<c>idx-gz</c>: the reader's checks behind a good gzip
/// layer) or mutated as a gzip file (<c>idx-gz-raw</c>: the gzip layer itself).</summary>
public sealed class IdxFormat(string variant) : IFuzzFormat
{
    bool Gz => variant != "idx";
    public string Name => variant;
    public string FileName => Gz ? "t10k-images-idx3-ubyte.gz" : "t10k-images-idx3-ubyte";

    public IReadOnlyList<FuzzSeed> Seeds()
    {
        if (variant == "idx-gz-raw")
            return [new("images.gz", FuzzFormats.Fixture("readers", "fmnist-gz", "t10k-images-idx3-ubyte.gz"), [])];
        var bytes = FuzzFormats.Fixture("readers", "fmnist", "t10k-images-idx3-ubyte");
        return [new("images", bytes, [new(0, 4, true, "magic"), new(4, 4, true, "count"), new(8, 4, true, "rows"), new(12, 4, true, "cols")])];
    }

    public byte[] Encode(byte[] mutated) => variant == "idx-gz" ? Gzip(mutated) : mutated;

    public static byte[] Gzip(byte[] data)
    {
        var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Fastest, leaveOpen: true)) gz.Write(data);
        return ms.ToArray();
    }

    public string Read(string path)
    {
        var dir = Path.GetDirectoryName(path)!;
        var labels = Gz ? FuzzFormats.Fixture("readers", "fmnist-gz", "t10k-labels-idx1-ubyte.gz") : FuzzFormats.Fixture("readers", "fmnist", "t10k-labels-idx1-ubyte");
        File.WriteAllBytes(Path.Combine(dir, Gz ? "t10k-labels-idx1-ubyte.gz" : "t10k-labels-idx1-ubyte"), labels);
        var idx = FashionMnistIdx.Load(dir, "t10k");
        return FuzzFormats.Hash(Convert.ToHexString(idx.Pixels) + Convert.ToHexString(idx.Labels));
    }

    static byte[] Header(int magic, int count, int rows = 28, int cols = 28)
    {
        var h = new byte[16];
        BinaryPrimitives.WriteInt32BigEndian(h, magic);
        BinaryPrimitives.WriteInt32BigEndian(h.AsSpan(4), count);
        BinaryPrimitives.WriteInt32BigEndian(h.AsSpan(8), rows);
        BinaryPrimitives.WriteInt32BigEndian(h.AsSpan(12), cols);
        return h;
    }

    public IEnumerable<FuzzCase> Crafted()
    {
        if (variant == "idx-gz-raw") yield break;
        var images = FuzzFormats.Fixture("readers", "fmnist", "t10k-images-idx3-ubyte")[16..];
        yield return new("count-negative", [.. Header(0x803, -3), .. images]);
        yield return new("count-zero", Header(0x803, 0));
        yield return new("count-2^31-1", [.. Header(0x803, int.MaxValue), .. images]);
        yield return new("rows-negative", [.. Header(0x803, 3, -28, -28), .. images]);
        yield return new("count-mismatch-labels", [.. Header(0x803, 2), .. images[..(2 * 784)]]);
        yield return new("extra-item", [.. Header(0x803, 3), .. images, .. new byte[784]]);
        if (Gz)
        {
            // A gzip bomb: the header claims 400 000 images (300 MiB) and the zeros really are there.
            yield return new("bomb-declared", FuzzFormats.Bomb("gzip", Header(0x803, 400_000), 400_000 * 784));
            // The header says 3 images, the stream holds 300 MiB more.
            yield return new("bomb-undeclared", FuzzFormats.Bomb("gzip", [.. Header(0x803, 3), .. images], 300 << 20));
        }
    }
}

/// <summary>PNG helpers shared by the PNG-based formats.</summary>
public static class Png
{
    /// <summary>A digest of a Mat's pixels.</summary>
    public static unsafe string Digest(Mat m)
    {
        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        sha.AppendData(Encoding.UTF8.GetBytes($"{m.Cols}x{m.Rows}x{m.Type()}:"));
        int rowBytes = (int)(m.Cols * m.ElemSize()), rows = m.Rows;
        for (int y = 0; y < rows; y++) sha.AppendData(new ReadOnlySpan<byte>((void*)m.Ptr(y), rowBytes));
        return Convert.ToHexString(sha.GetHashAndReset())[..16];
    }

    /// <summary>PNG fixtures of Fixtures/readers as seeds, with their length fields.</summary>
    public static IReadOnlyList<FuzzSeed> Seeds(params string[] names) => names.Select(f =>
    {
        var bytes = FuzzFormats.Fixture("readers", f);
        return new FuzzSeed(f, bytes, Fields(bytes));
    }).ToList();

    /// <summary>Each chunk's length field, and IHDR's width and height.</summary>
    public static List<LengthField> Fields(byte[] png)
    {
        var fields = new List<LengthField> { new(16, 4, true, "width"), new(20, 4, true, "height") };
        foreach (var (offset, _, _) in Chunks(png)) fields.Add(new(offset, 4, true, "chunklen"));
        return fields;
    }

    /// <summary>(offset, type, body) of each chunk of a valid PNG.</summary>
    public static List<(int Offset, string Type, byte[] Body)> Chunks(byte[] png)
    {
        var list = new List<(int, string, byte[])>();
        for (int pos = 8; pos + 12 <= png.Length;)
        {
            int length = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(pos));
            if (length < 0 || pos + 12 + length > png.Length) break;
            list.Add((pos, Encoding.ASCII.GetString(png, pos + 4, 4), png[(pos + 8)..(pos + 8 + length)]));
            pos += 12 + length;
        }
        return list;
    }

    /// <summary>A PNG of these chunks with correct CRCs.</summary>
    public static byte[] Build(IEnumerable<(string Type, byte[] Body)> chunks)
    {
        var ms = new MemoryStream();
        ms.Write([137, 80, 78, 71, 13, 10, 26, 10]);
        foreach (var (type, body) in chunks)
        {
            var head = new byte[8];
            BinaryPrimitives.WriteInt32BigEndian(head, body.Length);
            Encoding.ASCII.GetBytes(type).CopyTo(head, 4);
            ms.Write(head);
            ms.Write(body);
            var crc = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(crc, System.IO.Hashing.Crc32.HashToUInt32([.. head[4..], .. body]));
            ms.Write(crc);
        }
        return ms.ToArray();
    }

    static byte[] Ihdr(int width, int height, int depth, int colour, int interlace = 0)
    {
        var b = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(b, width);
        BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(4), height);
        (b[8], b[9], b[12]) = ((byte)depth, (byte)colour, (byte)interlace);
        return b;
    }

    static byte[] Zlib(byte[] raw, CompressionLevel level = CompressionLevel.Fastest)
    {
        var ms = new MemoryStream();
        using (var z = new ZLibStream(ms, level, leaveOpen: true)) z.Write(raw);
        return ms.ToArray();
    }

    static readonly byte[] Grey16 = Enumerable.Range(0, 48).Select(i => (byte)(i * 5)).ToArray();

    /// <summary>A palette PNG whose IHDR declares <paramref name="width"/>×<paramref name="height"/> with a small IDAT.</summary>
    public static IEnumerable<FuzzCase> HugeIhdr(string id, int width, int height, int depth, int colour)
    {
        var chunks = new List<(string, byte[])> { ("IHDR", Ihdr(width, height, depth, colour)) };
        if (colour == 3) chunks.Add(("PLTE", Grey16));
        chunks.Add(("IDAT", Zlib(new byte[4096])));
        chunks.Add(("IEND", []));
        yield return new(id, Build(chunks));
    }

    /// <summary>The crafted PNG cases of issue 13 and their neighbours.</summary>
    public static IEnumerable<FuzzCase> Crafted()
    {
        var seed = FuzzFormats.Fixture("readers", "mask_palette.png");
        var chunks = Chunks(seed).Select(c => (c.Type, c.Body)).ToList();
        byte[] With(Func<(string Type, byte[] Body), IEnumerable<(string, byte[])>> map) => Build(chunks.SelectMany(map));
        var ihdr = chunks[0].Body;
        byte[] Ih(int w, int h) { var b = (byte[])ihdr.Clone(); BinaryPrimitives.WriteInt32BigEndian(b, w); BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(4), h); return b; }

        // IHDR edits with the CRC made right: only the image data's size can tell.
        yield return new("ihdr-height-minus-1", With(c => c.Type == "IHDR" ? [(c.Type, Ih(24, 19))] : [c]));
        yield return new("ihdr-width-plus-1", With(c => c.Type == "IHDR" ? [(c.Type, Ih(25, 20))] : [c]));
        yield return new("ihdr-width-2^31-1", With(c => c.Type == "IHDR" ? [(c.Type, Ih(int.MaxValue, 20))] : [c]));
        yield return new("ihdr-2^31-1-square", With(c => c.Type == "IHDR" ? [(c.Type, Ih(int.MaxValue, int.MaxValue))] : [c]));
        yield return new("ihdr-width-2^31", With(c => c.Type == "IHDR" ? [(c.Type, Ih(int.MinValue, 20))] : [c]));
        yield return new("ihdr-zero", With(c => c.Type == "IHDR" ? [(c.Type, Ih(0, 20))] : [c]));
        foreach (var c in HugeIhdr("4bit-2^30-by-1", 1 << 30, 1, 4, 3)) yield return c;
        foreach (var c in HugeIhdr("8bit-2^31-1-square", int.MaxValue, int.MaxValue, 8, 3)) yield return c;
        yield return new("ihdr-crc-flip", FlipAt(seed, 29));
        // A zlib bomb: 8192 x 8192 palette image of zeros (64 MiB) — consistent IHDR, data really there.
        // A large image that is what it says: 2048 x 2048 of zeros (4 MiB), decoded.
        yield return new("large-consistent", Build([("IHDR", Ihdr(2048, 2048, 8, 3)), ("PLTE", Grey16), ("IDAT", FuzzFormats.Bomb("zlib", [], 2049 * 2048)), ("IEND", [])]));
        // A zlib bomb: 20000 x 20000 of zeros (381 MiB from 0.4 MB), beyond the decode limit.
        yield return new("bomb-20000-square", Build([("IHDR", Ihdr(20000, 20000, 8, 3)), ("PLTE", Grey16), ("IDAT", FuzzFormats.Bomb("zlib", [], 20001L * 20000)), ("IEND", [])]));
        // 24x20 declared, 64 MiB of data.
        yield return new("bomb-undeclared", Build([("IHDR", Ih(24, 20)), ("PLTE", Grey16), ("IDAT", FuzzFormats.Bomb("zlib", [], 64 << 20)), ("IEND", [])]));
        var idat = chunks.Where(c => c.Type == "IDAT").SelectMany(c => c.Body).ToArray();
        var badAdler = (byte[])idat.Clone();
        badAdler[^1] ^= 1;
        yield return new("adler-flip", With(c => c.Type == "IDAT" ? (ReferenceEquals(c.Body, chunks.First(x => x.Type == "IDAT").Body) ? [("IDAT", badAdler)] : []) : [c]));
        yield return new("zlib-header-bad", With(c => c.Type == "IDAT" ? [(c.Type, [0x78, 0x00, .. c.Body[2..]])] : [c]));
        yield return new("no-iend", seed[..^12]);
        yield return new("no-plte", With(c => c.Type == "PLTE" ? [] : [c]));
        yield return new("no-idat", With(c => c.Type == "IDAT" ? [] : [c]));
        yield return new("two-plte", With(c => c.Type == "PLTE" ? [c, c] : [c]));
        yield return new("two-ihdr", With(c => c.Type == "IHDR" ? [c, c] : [c]));
        yield return new("plte-empty", With(c => c.Type == "PLTE" ? [(c.Type, [])] : [c]));
        yield return new("plte-not-multiple-of-3", With(c => c.Type == "PLTE" ? [(c.Type, c.Body[..100])] : [c]));
        yield return new("unknown-critical", With(c => c.Type == "IEND" ? [("ZZZZ", [1, 2, 3]), c] : [c]));
        yield return new("idat-not-consecutive", With(c => c.Type == "IDAT" ? [c, ("tEXt", "a\0b"u8.ToArray())] : [c]));
        yield return new("interlaced", With(c => c.Type == "IHDR" ? [(c.Type, [.. c.Body[..12], 1])] : [c]));
        yield return new("bit-depth-16", With(c => c.Type == "IHDR" ? [(c.Type, [.. c.Body[..8], 16, .. c.Body[9..]])] : [c]));
        var lenBig = (byte[])seed.Clone();
        BinaryPrimitives.WriteUInt32BigEndian(lenBig.AsSpan(33), 0x8000_0000);
        yield return new("chunk-length-2^31", lenBig);
        var lenNeg = (byte[])seed.Clone();
        BinaryPrimitives.WriteUInt32BigEndian(lenNeg.AsSpan(33), 0xFFFF_FFFF);
        yield return new("chunk-length-2^32-1", lenNeg);
        yield return new("signature-only", seed[..8]);
    }

    static byte[] FlipAt(byte[] b, int at)
    {
        var c = (byte[])b.Clone();
        c[at] ^= 0x01;
        return c;
    }

    /// <summary>Chunk-level mutations with the CRCs made right: a body flipped, truncated or extended, an IHDR field
    /// set to a boundary value, a chunk dropped or duplicated.</summary>
    public static IEnumerable<FuzzCase> Structured(IReadOnlyList<FuzzSeed> seeds, Random rng, int count)
    {
        int[] boundaries = [0, 1, 2, 19, 20, 21, 255, 256, 65535, 1 << 20, 1 << 28, int.MaxValue, -1, int.MinValue];
        for (int i = 0; i < count; i++)
        {
            var seed = seeds[rng.Next(seeds.Count)];
            var chunks = Chunks(seed.Bytes).Select(c => (c.Type, Body: (byte[])c.Body.Clone())).ToList();
            int k = rng.Next(chunks.Count);
            string what;
            switch (rng.Next(5))
            {
                case 0 when chunks[k].Body.Length > 0:
                    int at = rng.Next(chunks[k].Body.Length);
                    chunks[k].Body[at] ^= (byte)(1 + rng.Next(255));
                    what = $"{chunks[k].Type}-flip@{at}";
                    break;
                case 1:
                    int keep = rng.Next(chunks[k].Body.Length + 1);
                    chunks[k] = (chunks[k].Type, chunks[k].Body[..keep]);
                    what = $"{chunks[k].Type}-truncate@{keep}";
                    break;
                case 2:
                    int field = rng.Next(4);
                    int v = boundaries[rng.Next(boundaries.Length)];
                    if (field < 2) BinaryPrimitives.WriteInt32BigEndian(chunks[0].Body.AsSpan(4 * field), v);
                    else chunks[0].Body[6 + field] = (byte)v;
                    what = $"IHDR-field{field}={v}";
                    break;
                case 3:
                    chunks.RemoveAt(k);
                    what = $"drop-{k}";
                    break;
                default:
                    chunks.Insert(k, chunks[k]);
                    what = $"duplicate-{k}";
                    break;
            }
            yield return new($"{seed.Name}/{what}", Build(chunks));
        }
    }
}
