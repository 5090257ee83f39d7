using System.Buffers.Binary;
using System.IO.Compression;
using OpenCvSharp;
using Seg.Data;
using Seg.Data.Datasets;
using Seg.Data.Imaging;

namespace Seg.Tests.Data;

public class PalettePngTests
{
    [Fact]
    public void VocPaletteHasThePublishedColours()
    {
        // Values from the VOC 2012 devkit's colour map (VOClabelcolormap.m), as published.
        Assert.Equal(((byte)0, (byte)0, (byte)0), VocClasses.Palette[0]);
        Assert.Equal(((byte)128, (byte)0, (byte)0), VocClasses.Palette[1]);      // aeroplane
        Assert.Equal(((byte)0, (byte)128, (byte)0), VocClasses.Palette[2]);      // bicycle
        Assert.Equal(((byte)128, (byte)128, (byte)0), VocClasses.Palette[3]);    // bird
        Assert.Equal(((byte)0, (byte)0, (byte)128), VocClasses.Palette[4]);      // boat
        Assert.Equal(((byte)64, (byte)0, (byte)0), VocClasses.Palette[8]);       // cat
        Assert.Equal(((byte)192, (byte)128, (byte)128), VocClasses.Palette[15]); // person
        Assert.Equal(((byte)0, (byte)64, (byte)128), VocClasses.Palette[20]);    // tvmonitor
        Assert.Equal(((byte)224, (byte)224, (byte)192), VocClasses.Palette[255]); // border
        Assert.Equal(21, VocClasses.Names.Count);
    }

    [Fact]
    public void WrittenPalettePngRoundTripsAndOpenCvSeesThePaletteColours()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "m.png");
        using var labels = DataFixtures.BlockMask(37, 53, 21, seed: 3, border: 255);
        PalettePng.Write(path, labels, VocClasses.Palette);

        Assert.True(PalettePng.TryRead(path, out var back, out var palette));
        using (back)
        {
            Assert.Equal(0, Cv2.CountNonZero(Diff(labels, back!)));
            Assert.Equal(VocClasses.Palette[255], palette![255]);
        }
        // Independent decoder: OpenCV expands the palette to BGR; each pixel must have its label's VOC colour.
        using var bgr = Cv2.ImRead(path, ImreadModes.Color);
        int rows = labels.Rows, cols = labels.Cols;
        for (int y = 0; y < rows; y++)
            for (int x = 0; x < cols; x++)
            {
                var (r, g, b) = VocClasses.Palette[labels.At<byte>(y, x)];
                Assert.Equal(new Vec3b(b, g, r), bgr.At<Vec3b>(y, x));
            }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(8)]
    [InlineData(4)]
    public void DecodesEveryRowFilterAndLowBitDepths(int bitDepth)
    {
        // A hand-made PNG whose rows cycle through the five filter types (PNG spec, section 9), checked
        // against OpenCV's decoding of the same file.
        int depth = bitDepth;
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "f.png");
        var rng = new Random(bitDepth);
        int w = 13, h = 10, levels = 1 << Math.Min(depth, 4);
        var labels = new byte[h, w];
        for (int y = 0; y < h; y++) for (int x = 0; x < w; x++) labels[y, x] = (byte)rng.Next(levels);
        WriteFilteredPng(path, labels, depth);

        Assert.True(PalettePng.TryRead(path, out var back, out var palette));
        using var cv = Cv2.ImRead(path, ImreadModes.Color);
        using (back)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                {
                    Assert.Equal(labels[y, x], back!.At<byte>(y, x));
                    var (r, g, b) = palette![labels[y, x]];
                    Assert.Equal(new Vec3b(b, g, r), cv.At<Vec3b>(y, x));
                }
    }

    [Fact]
    public void GreyPngIsNotAPalettePngAndCorruptPaletteDataNamesTheFile()
    {
        using var dir = new TempDir();
        var grey = Path.Combine(dir.Path, "g.png");
        using (var m = new Mat(4, 4, MatType.CV_8UC1, Scalar.All(3))) Cv2.ImWrite(grey, m);
        Assert.False(PalettePng.TryRead(grey, out _, out _));

        var good = Path.Combine(dir.Path, "p.png");
        using (var m = DataFixtures.BlockMask(30, 30, 5, 1)) PalettePng.Write(good, m, VocClasses.Palette);
        var bytes = File.ReadAllBytes(good);
        var cut = Path.Combine(dir.Path, "cut.png");
        File.WriteAllBytes(cut, bytes[..(bytes.Length - 30)]);
        var e = Assert.Throws<BadSampleException>(() => PalettePng.TryRead(cut, out _, out _));
        Assert.Contains("cut.png", e.Message);
    }

    static Mat Diff(Mat a, Mat b)
    {
        var d = new Mat();
        Cv2.Absdiff(a, b, d);
        return d;
    }

    static void WriteFilteredPng(string path, byte[,] labels, int depth)
    {
        int h = labels.GetLength(0), w = labels.GetLength(1), stride = (w * depth + 7) / 8;
        var rows = new byte[h][];
        for (int y = 0; y < h; y++)
        {
            rows[y] = new byte[stride];
            for (int x = 0; x < w; x++) rows[y][x * depth / 8] |= (byte)(labels[y, x] << (8 - depth - (x * depth % 8)));
        }
        using var raw = new MemoryStream();
        using (var z = new ZLibStream(raw, CompressionLevel.Optimal, leaveOpen: true))
            for (int y = 0; y < h; y++)
            {
                int f = y % 5;
                var prior = y > 0 ? rows[y - 1] : new byte[stride];
                var cur = rows[y];
                var o = new byte[stride];
                for (int i = 0; i < stride; i++)
                {
                    int a = i > 0 ? cur[i - 1] : 0, b = prior[i], c = i > 0 ? prior[i - 1] : 0;
                    int pred = f switch { 0 => 0, 1 => a, 2 => b, 3 => (a + b) / 2, _ => PaethRef(a, b, c) };
                    o[i] = (byte)(cur[i] - pred);
                }
                z.WriteByte((byte)f);
                z.Write(o);
            }
        using var file = File.Create(path);
        file.Write([137, 80, 78, 71, 13, 10, 26, 10]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, w);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), h);
        ihdr[8] = (byte)depth; ihdr[9] = 3;
        Chunk(file, "IHDR", ihdr);
        var plte = new byte[3 << depth];
        for (int i = 0; i < plte.Length; i++) plte[i] = (byte)(i * 37 + 11);
        Chunk(file, "PLTE", plte);
        Chunk(file, "IDAT", raw.ToArray());
        Chunk(file, "IEND", []);
    }

    static int PaethRef(int a, int b, int c)
    {
        int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }

    static void Chunk(Stream s, string type, byte[] body)
    {
        var head = new byte[8];
        BinaryPrimitives.WriteInt32BigEndian(head, body.Length);
        System.Text.Encoding.ASCII.GetBytes(type).CopyTo(head, 4);
        s.Write(head);
        s.Write(body);
        // Reference CRC-32 computed bitwise (no table) over type + body.
        uint crc = 0xFFFFFFFF;
        foreach (var by in head[4..].Concat(body))
        {
            crc ^= by;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320 : crc >> 1;
        }
        var tail = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(tail, ~crc);
        s.Write(tail);
    }
}
