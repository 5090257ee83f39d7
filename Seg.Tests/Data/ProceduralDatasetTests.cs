using System.IO.Compression;
using OpenCvSharp;
using Seg.Data;
using Seg.Data.Datasets;

namespace Seg.Tests.Data;

public class ProceduralDatasetTests
{
    static bool Same(Mat a, Mat b)
    {
        if (a.Size() != b.Size() || a.Type() != b.Type()) return false;
        return Cv2.Norm(a, b, NormTypes.L1) == 0;
    }

    [Fact]
    public void ShapesAreDeterministicBySeedAndIndexAndDifferOtherwise()
    {
        var a = DatasetFactory.Create(new DatasetOptions { Seed = 5, Count = 10, Size = 64 });
        var b = DatasetFactory.Create(new DatasetOptions { Seed = 5, Count = 10, Size = 64 });
        var c = DatasetFactory.Create(new DatasetOptions { Seed = 6, Count = 10, Size = 64 });
        var val = DatasetFactory.Create(new DatasetOptions { Seed = 5, Count = 10, Size = 64, Split = "val" });
        using var a3 = a.Get(3);
        using var b3 = b.Get(3);
        using var c3 = c.Get(3);
        using var a4 = a.Get(4);
        using var v3 = val.Get(3);
        Assert.True(Same(a3.Image, b3.Image) && Same(a3.Mask, b3.Mask));
        Assert.False(Same(a3.Image, c3.Image));
        Assert.False(Same(a3.Image, a4.Image));
        Assert.False(Same(a3.Image, v3.Image));
        Assert.Equal(new Size(64, 64), a3.Image.Size());
        Assert.Equal(MatType.CV_8UC3, a3.Image.Type());
        // Parallel reads give the same samples as sequential ones.
        var parallel = new Mat[10];
        Parallel.For(0, 10, i => { using var s = a.Get(i); parallel[i] = s.Mask.Clone(); });
        for (int i = 0; i < 10; i++) { using var s = b.Get(i); Assert.True(Same(s.Mask, parallel[i])); parallel[i].Dispose(); }
    }

    [Fact]
    public void ShapesCoverEveryClassWithValidLabelsAndVisibleShapes()
    {
        var ds = DatasetFactory.Create(new DatasetOptions { Count = 30, Size = 96 });
        Assert.Equal(["background", "circle", "square", "triangle"], ds.ClassNames);
        var seen = new long[4];
        for (int i = 0; i < ds.Count; i++)
        {
            using var s = ds.Get(i);
            for (int c = 0; c < 4; c++)
            {
                using var eq = new Mat();
                Cv2.Compare(s.Mask, new Scalar(c), eq, CmpTypes.EQ);
                seen[c] += Cv2.CountNonZero(eq);
            }
            Assert.Equal(96L * 96, Enumerable.Range(0, 4).Sum(c => { using var eq = new Mat(); Cv2.Compare(s.Mask, new Scalar(c), eq, CmpTypes.EQ); return (long)Cv2.CountNonZero(eq); }));
            // Shapes stand out: the mean colour inside objects differs from the background's.
            using var fg = new Mat();
            Cv2.Compare(s.Mask, new Scalar(0), fg, CmpTypes.GT);
            using var bg = new Mat();
            Cv2.BitwiseNot(fg, bg);
            if (Cv2.CountNonZero(fg) > 50 && Cv2.CountNonZero(bg) > 50)
            {
                using var grey = new Mat();
                Cv2.CvtColor(s.Image, grey, ColorConversionCodes.BGR2GRAY);
                // Per pixel (shapes may be lighter or darker than the background, so means could cancel).
                double background = Cv2.Mean(grey, bg).Val0;
                using var offset = new Mat();
                Cv2.Absdiff(grey, new Scalar(background), offset);
                Assert.True(Cv2.Mean(offset, fg).Val0 > 30, $"sample {i}: shapes blend into the background");
            }
        }
        Assert.All(seen, n => Assert.True(n > 0));
    }

    /// <summary>Writes a tiny Fashion-MNIST in IDX gz format: image k is a filled square of intensity 200 in rows 4..23.</summary>
    static void WriteIdx(string root, string prefix, byte[] labels)
    {
        using (var f = new GZipStream(File.Create(Path.Combine(root, $"{prefix}-images-idx3-ubyte.gz")), CompressionLevel.Fastest))
        {
            f.Write([0, 0, 8, 3, 0, 0, 0, (byte)labels.Length, 0, 0, 0, 28, 0, 0, 0, 28]);
            var img = new byte[784];
            for (int y = 4; y < 24; y++) for (int x = 4; x < 24; x++) img[y * 28 + x] = 200;
            foreach (var _ in labels) f.Write(img);
        }
        using var l = new GZipStream(File.Create(Path.Combine(root, $"{prefix}-labels-idx1-ubyte.gz")), CompressionLevel.Fastest);
        l.Write([0, 0, 8, 1, 0, 0, 0, (byte)labels.Length]);
        l.Write(labels);
    }

    [Fact]
    public void FashionMnistScenesLabelGarmentsByClassPlusOneAndSplitSources()
    {
        using var dir = new TempDir();
        WriteIdx(dir.Path, "train", [4, 4, 4]);   // train garments are all Coat (label 4 → class 5)
        WriteIdx(dir.Path, "t10k", [9, 9]);       // test garments are all Ankle boot (label 9 → class 10)
        var train = DatasetFactory.Create(new DatasetOptions { Type = "fmnist_scenes", Root = dir.Path, Count = 5, Size = 64, Seed = 1 });
        var val = DatasetFactory.Create(new DatasetOptions { Type = "fmnist_scenes", Root = dir.Path, Split = "val", Count = 5, Size = 64, Seed = 1 });
        Assert.Equal(11, train.NumClasses);
        Assert.Equal("Ankle boot", train.ClassNames[10]);
        for (int i = 0; i < 5; i++)
        {
            using var t = train.Get(i);
            using var v = val.Get(i);
            t.Mask.MinMaxLoc(out double tmin, out double tmax);
            v.Mask.MinMaxLoc(out double vmin, out double vmax);
            Assert.Equal((0.0, 5.0), (tmin, tmax));
            Assert.Equal((0.0, 10.0), (vmin, vmax));
            // Labelled pixels are bright garment pixels; background stays dark.
            using var grey = new Mat();
            Cv2.CvtColor(t.Image, grey, ColorConversionCodes.BGR2GRAY);
            using var fg = new Mat();
            Cv2.Compare(t.Mask, new Scalar(0), fg, CmpTypes.GT);
            using var bg = new Mat();
            Cv2.BitwiseNot(fg, bg);
            Assert.True(Cv2.Mean(grey, fg).Val0 > 60);
            Assert.True(Cv2.Mean(grey, bg).Val0 < 30);
        }
        var again = DatasetFactory.Create(new DatasetOptions { Type = "fmnist_scenes", Root = dir.Path, Count = 5, Size = 64, Seed = 1 });
        using var x = train.Get(2);
        using var y = again.Get(2);
        Assert.True(Same(x.Image, y.Image) && Same(x.Mask, y.Mask));
    }

    [Fact]
    public void FashionMnistBadFilesAreNamed()
    {
        using var dir = new TempDir();
        var missing = Assert.Throws<BadSampleException>(() => DatasetFactory.Create(new DatasetOptions { Type = "fmnist_scenes", Root = dir.Path }));
        Assert.Contains("train-images-idx3-ubyte", missing.Message);
        File.WriteAllBytes(Path.Combine(dir.Path, "train-images-idx3-ubyte"), [0, 0, 8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        File.WriteAllBytes(Path.Combine(dir.Path, "train-labels-idx1-ubyte"), [0, 0, 8, 1, 0, 0, 0, 0]);
        var magic = Assert.Throws<BadSampleException>(() => DatasetFactory.Create(new DatasetOptions { Type = "fmnist_scenes", Root = dir.Path }));
        Assert.Contains("train-images-idx3-ubyte", magic.File);
        Assert.Contains("0x801", magic.Message);
    }

    [Fact]
    public void RealFashionMnistWhenInstalled()
    {
        // Debian's dataset-fashion-mnist; the fixture tests above cover the logic when it is absent.
        if (!File.Exists(Path.Combine(FashionMnistIdx.DefaultRoot, "t10k-images-idx3-ubyte.gz"))) return;
        var ds = DatasetFactory.Create(new DatasetOptions { Type = "fmnist_scenes", Split = "val", Count = 3 });
        using var s = ds.Get(0);
        s.Mask.MinMaxLoc(out double _, out double max);
        Assert.InRange(max, 1, 10);
        Assert.Equal(10000, FashionMnistIdx.Load(FashionMnistIdx.DefaultRoot, "t10k").Count);
    }
}
