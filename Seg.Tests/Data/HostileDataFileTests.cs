using System.Buffers.Binary;
using System.Text;
using OpenCvSharp;
using Seg.Data;
using Seg.Data.Datasets;
using Seg.Data.Imaging;
using Seg.Tests.Fuzz;
using Seg.Tests.Models;

namespace Seg.Tests.Data;

/// <summary>
/// Regression tests for the dataset files of issue 13 (palette PNGs, masks, images, IDX): each hostile file is
/// refused with a <see cref="BadSampleException"/> naming the file and what is wrong, in bounded memory, and a
/// dataset in skip mode skips and counts whatever a reader throws.
/// </summary>
[Collection(ReaderLimitsCollection.Name)]
public sealed class HostileDataFileTests : IDisposable
{
    readonly TempFiles files = new();

    public void Dispose() => files.Dispose();

    static byte[] Fixture(string name) => FuzzFormats.Fixture("readers", name);

    BadSampleException RefusedPng(string name, byte[] bytes, params string[] expected)
    {
        var path = files.Write(name, bytes);
        var e = Assert.Throws<BadSampleException>(() => PalettePng.TryRead(path, out _, out _));
        Check(e, path, expected);
        return e;
    }

    static void Check(Exception e, string path, string[] expected)
    {
        Assert.True(e.Message.Contains(path, StringComparison.Ordinal), $"path not in: {e.Message}");
        foreach (var s in expected) Assert.True(e.Message.Contains(s, StringComparison.Ordinal), $"'{s}' not in: {e.Message}");
    }

    static byte[] PngCase(string id) => Png.Crafted().Single(c => c.Id == id).Bytes;

    [Fact]
    public void PaletteFixturesDecodeAsOpenCvDecodesThem()
    {
        // Oracle: OpenCV (libpng) expands the palette; every pixel must have its index's palette colour. The fixture
        // (written from the spec in Python) splits its data over two IDAT chunks and has a tEXt chunk.
        foreach (var name in new[] { "mask_palette.png", "mask_palette4.png" })
        {
            var path = FuzzFormats.FixturePath("readers", name);
            Assert.True(PalettePng.TryRead(path, out var indices, out var palette));
            using (indices)
            using (var bgr = Cv2.ImRead(path, ImreadModes.Color))
            {
                int rows = bgr.Rows, cols = bgr.Cols;
                Assert.Equal((rows, cols), (indices!.Rows, indices.Cols));
                for (int y = 0; y < rows; y++)
                    for (int x = 0; x < cols; x++)
                    {
                        var (r, g, b) = palette![indices.At<byte>(y, x)];
                        Assert.Equal(new Vec3b(b, g, r), bgr.At<Vec3b>(y, x));
                    }
            }
        }
    }

    [Fact]
    public void Adler32MatchesThePublishedExample() =>
        Assert.Equal(0x11E60398u, PalettePng.Adler32("Wikipedia"u8)); // RFC 1950's checksum of "Wikipedia"

    [Fact]
    public void AnIhdrEditIsCaughtByTheCrcOrByTheImageDataSize()
    {
        // The case: a height edit used to give a 24x19 mask from a 24x20 file.
        var seed = Fixture("mask_palette.png");
        var edited = (byte[])seed.Clone();
        BinaryPrimitives.WriteInt32BigEndian(edited.AsSpan(20), 19);
        RefusedPng("h.png", edited, "chunk IHDR at byte 8 fails its CRC check");
        RefusedPng("h2.png", PngCase("ihdr-height-minus-1"), "image data inflates to more than the 475 bytes the image needs");
        RefusedPng("w2.png", PngCase("ihdr-width-plus-1"), "image data inflates to 500 bytes, not the 520 the image needs");
    }

    [Fact]
    public void ChunkCrcsAndTheAdler32AreChecked()
    {
        var seed = Fixture("mask_palette.png");
        var flipped = (byte[])seed.Clone();
        flipped[60] ^= 1; // inside PLTE
        RefusedPng("crc.png", flipped, "chunk PLTE at byte 33 fails its CRC check");
        RefusedPng("adler.png", PngCase("adler-flip"), "image data fails its zlib Adler-32 check");
    }

    [Theory]
    [InlineData("ihdr-width-2^31-1", "2147483647x20 pixels")]
    [InlineData("ihdr-2^31-1-square", "2147483647x2147483647 pixels")]
    [InlineData("4bit-2^30-by-1", "1073741824x1 pixels")]
    [InlineData("8bit-2^31-1-square", "2147483647x2147483647 pixels")]
    [InlineData("ihdr-width-2^31", "IHDR declares width 2147483648")]
    public void HugeIhdrSizesAreRefusedBeforeAllocating(string id, string expected)
    {
        var bytes = PngCase(id);
        var path = files.Write($"{id}.png", bytes);
        var before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<BadSampleException>(() => PalettePng.TryRead(path, out _, out _));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 4 << 20, "allocated for the declared size");
        Check(e, path, [expected]);
    }

    [Fact]
    public void APngZlibBombIsRefusedByTheDecodeLimit()
    {
        using var cap = new ReaderLimitsCollection.Cap(16 << 20);
        // 8192 x 8192 of zeros: 64 MiB from 64 KB, IHDR consistent with the data.
        var bomb = Png.Build([("IHDR", Ihdr(8192, 8192, 8, 3)), ("PLTE", new byte[48]), ("IDAT", FuzzFormats.Bomb("zlib", [], 8193L * 8192)), ("IEND", [])]);
        RefusedPng("bomb.png", bomb, "8192x8192 pixels", "beyond the decode limit of 16777216 bytes (16 MiB)");
        // Small IHDR, a bomb of data behind it: inflating stops at the image's size.
        var path = files.Write("bomb2.png", PngCase("bomb-undeclared"));
        var before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<BadSampleException>(() => PalettePng.TryRead(path, out _, out _));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 4 << 20, "the bomb was inflated");
        Check(e, path, ["image data inflates to more than the 500 bytes"]);
    }

    static byte[] Ihdr(int w, int h, int depth, int colour)
    {
        var b = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(b, w);
        BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(4), h);
        (b[8], b[9]) = ((byte)depth, (byte)colour);
        return b;
    }

    [Fact]
    public void AnRgbDecompressionBombIsANamedBadSample()
    {
        // A PNG declaring 2^15 x 2^15 RGB (3 GiB decoded) is refused from its IHDR, before OpenCV decodes it.
        var path = files.Write("rgb-bomb.png", ImageCrafted("rgb-2^15-square"));
        var e = Assert.Throws<BadSampleException>(() => SampleFiles.ReadImage(path));
        Check(e, path, ["32768x32768 pixels", "beyond the image memory limit"]);
        // A TIFF declaring 2^31 x 2^31: refused from its image directory too.
        var tiff = files.Write("huge.tif", ImageCrafted("tiff-huge"));
        var t = Assert.Throws<BadSampleException>(() => SampleFiles.ReadImage(tiff));
        Check(t, tiff, ["2147483647x2147483647 pixels", "beyond the image memory limit"]);
        var bmp = files.Write("huge.bmp", ImageCrafted("bmp-2^20-square"));
        Check(Assert.Throws<BadSampleException>(() => SampleFiles.ReadImage(bmp)), bmp, ["1048576x1048576 pixels"]);
        var jpg = files.Write("huge.jpg", ImageCrafted("jpeg-65535-square"));
        Check(Assert.Throws<BadSampleException>(() => SampleFiles.ReadImage(jpg)), jpg, ["65535x65535 pixels"]);
    }

    static byte[] ImageCrafted(string id) => new ImageFormat().Crafted().Single(c => c.Id == id).Bytes;

    [Fact]
    public void AMaskDeclaringWidth2To28IsSkippedAndCountedInSkipModeAndNamedInErrorMode()
    {
        using var dir = new TempDir();
        DataFixtures.WriteFolder(dir.Path, 3, 5, h: 20, w: 24);
        var bad = Path.Combine(dir.Path, "masks", "img001.png");
        File.WriteAllBytes(bad, new MaskFormat(BadSampleMode.Skip).Crafted().Single(c => c.Id == "mask-width-2^28").Bytes);

        var error = DatasetFactory.Create(new DatasetOptions { Type = "folder", Root = dir.Path, NumClasses = 5 });
        var e = Assert.Throws<BadSampleException>(() => error.Get(1));
        Assert.Equal(bad, e.File);
        Check(e, bad, ["268435456x20 pixels"]);

        // Skip mode, also with num_classes inferred (which reads every mask while listing).
        foreach (int? classes in new int?[] { 5, null })
        {
            var skip = (FolderDataset)DatasetFactory.Create(new DatasetOptions { Type = "folder", Root = dir.Path, NumClasses = classes, OnBadSample = BadSampleMode.Skip });
            for (int i = 0; i < skip.Count; i++) using (skip.Get(i)) { }
            Assert.Equal(1, skip.BadSamples.Count);
            Assert.Contains(bad, skip.BadSamples.Messages[0]);
        }
    }

    sealed class ThrowingDataset(BadSampleMode mode) : SegmentationDatasetBase(["a", "b"], [(0, 0, 0), (1, 1, 1)], 255, mode)
    {
        public override int Count => 3;
        protected override string Describe() => "throwing";
        protected override SegmentationSample Load(int index) => index == 1
            ? throw new OverflowException("a decoder overflowed")
            : new SegmentationSample(new Mat(2, 2, MatType.CV_8UC3), new Mat(2, 2, MatType.CV_8UC1, Scalar.All(0)), $"s{index}");
    }

    [Fact]
    public void SkipModeSkipsWhateverAReaderThrows()
    {
        var skip = new ThrowingDataset(BadSampleMode.Skip);
        using var s = skip.Get(1);
        Assert.Equal("s2", s.Id);
        Assert.Equal(1, skip.BadSamples.Count);
        Assert.Contains("OverflowException: a decoder overflowed", skip.BadSamples.Messages[0]);
        Assert.Throws<OverflowException>(() => new ThrowingDataset(BadSampleMode.Error).Get(1));
    }

    string IdxDir(string name, byte[] images, bool gz)
    {
        var dir = Path.Combine(files.Dir, name);
        string suffix = gz ? ".gz" : "";
        files.Write(Path.Combine(name, "t10k-images-idx3-ubyte" + suffix), gz ? IdxFormat.Gzip(images) : images);
        files.Write(Path.Combine(name, "t10k-labels-idx1-ubyte" + suffix), FuzzFormats.Fixture("readers", gz ? "fmnist-gz" : "fmnist", "t10k-labels-idx1-ubyte" + suffix));
        return dir;
    }

    static byte[] IdxCase(string id, string variant = "idx") => new IdxFormat(variant).Crafted().Single(c => c.Id == id).Bytes;

    [Theory]
    [InlineData("count-negative", "IDX header declares -3 items")]
    [InlineData("count-zero", "IDX header declares 0 items")]
    [InlineData("count-2^31-1", "IDX header declares 2147483647 items (1683627179248 bytes), but the file holds 2352 bytes after the header")]
    [InlineData("extra-item", "file holds more than the 3 items its header declares")]
    public void IdxCountsAreCheckedAgainstTheFile(string id, string expected)
    {
        foreach (bool gz in new[] { false, true })
        {
            var dir = IdxDir($"{id}-{gz}", IdxCase(id), gz);
            var e = Assert.Throws<BadSampleException>(() => FashionMnistIdx.Load(dir, "t10k"));
            var path = Path.Combine(dir, "t10k-images-idx3-ubyte" + (gz ? ".gz" : ""));
            Assert.Equal(path, e.File);
            Check(e, path, [gz && id == "count-2^31-1" ? "IDX header declares 2147483647 items" : expected]);
        }
    }

    [Fact]
    public void AnIdxGzipBombIsRefusedBeforeInflating()
    {
        using var cap = new ReaderLimitsCollection.Cap(16 << 20);
        var header = new byte[16];
        BinaryPrimitives.WriteInt32BigEndian(header, 0x803);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), 100_000);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(8), 28);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(12), 28);
        var dir = Path.Combine(files.Dir, "bomb");
        files.Write(Path.Combine("bomb", "t10k-images-idx3-ubyte.gz"), FuzzFormats.Bomb("gzip", header, 100_000 * 784));
        files.Write(Path.Combine("bomb", "t10k-labels-idx1-ubyte.gz"), FuzzFormats.Fixture("readers", "fmnist-gz", "t10k-labels-idx1-ubyte.gz"));
        var before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<BadSampleException>(() => FashionMnistIdx.Load(dir, "t10k"));
        Check(e, Path.Combine(dir, "t10k-images-idx3-ubyte.gz"), ["declares 100000 items (78400000 bytes (74.8 MiB))", "decompression limit of 16777216 bytes (16 MiB)"]);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 4 << 20, "the bomb was inflated");

        // Three images declared, 64 MiB of zeros behind them: reading stops after the declared items.
        var dir2 = IdxDir("bomb2", [], gz: true);
        File.WriteAllBytes(Path.Combine(dir2, "t10k-images-idx3-ubyte.gz"),
            FuzzFormats.Bomb("gzip", FuzzFormats.Fixture("readers", "fmnist", "t10k-images-idx3-ubyte"), 64 << 20));
        var e2 = Assert.Throws<BadSampleException>(() => FashionMnistIdx.Load(dir2, "t10k"));
        Assert.Contains("file holds more than the 3 items its header declares", e2.Message);
    }

    [Fact]
    public void TheIdxFixturesReadAsWritten()
    {
        foreach (var folder in new[] { "fmnist", "fmnist-gz" })
        {
            var idx = FashionMnistIdx.Load(FuzzFormats.FixturePath("readers", folder), "t10k");
            Assert.Equal([7, 2, 9], idx.Labels);
            Assert.Equal(3, idx.Count);
            // make_reader_fixtures.py: pixel (i, y, x) = (i*37 + x*3 + y*5) % 256 inside [4, 24)^2, else 0.
            Assert.Equal((byte)((2 * 37 + 10 * 3 + 5 * 5) % 256), idx.Pixels[2 * 784 + 5 * 28 + 10]);
            Assert.Equal(0, idx.Pixels[1 * 784 + 2 * 28 + 3]);
        }
    }
}
