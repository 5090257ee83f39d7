using OpenCvSharp;
using Seg.Data;
using Seg.Data.Datasets;
using Seg.Data.Imaging;

namespace Seg.Tests.Data;

/// <summary>Each kind of bad input raises an error naming the file and value, or is skipped and counted.</summary>
public class BadInputTests
{
    static DatasetOptions Folder(string root, BadSampleMode mode = BadSampleMode.Error, int classes = 5) =>
        new() { Type = "folder", Root = root, NumClasses = classes, OnBadSample = mode };

    [Fact]
    public void CorruptImageNamesTheFile()
    {
        using var dir = new TempDir();
        DataFixtures.WriteFolder(dir.Path, 3, 5);
        var bad = Path.Combine(dir.Path, "images", "img001.png");
        File.WriteAllBytes(bad, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
        var ds = DatasetFactory.Create(Folder(dir.Path));
        var e = Assert.Throws<BadSampleException>(() => ds.Get(1));
        Assert.Equal(bad, e.File);
        Assert.Contains("not a PNG, JPEG, BMP, TIFF or WebP image", e.Message); // refused from its first bytes
        Assert.Contains(bad, e.Message);
    }

    [Fact]
    public void MissingMaskNamesTheFileOrIsDroppedAndCounted()
    {
        using var dir = new TempDir();
        DataFixtures.WriteFolder(dir.Path, 3, 5);
        File.Delete(Path.Combine(dir.Path, "masks", "img002.png"));
        var e = Assert.Throws<BadSampleException>(() => DatasetFactory.Create(Folder(dir.Path)));
        Assert.Contains("img002", e.Message);
        Assert.Contains("mask file is missing", e.Message);

        var skipping = (FolderDataset)DatasetFactory.Create(Folder(dir.Path, BadSampleMode.Skip));
        Assert.Equal(2, skipping.Count);
        Assert.Equal(1, skipping.BadSamples.Count);
        Assert.Contains("img002", skipping.BadSamples.Messages[0]);
    }

    [Fact]
    public void SizeMismatchNamesBothFilesAndSizes()
    {
        using var dir = new TempDir();
        DataFixtures.WriteFolder(dir.Path, 2, 5);
        var mask = Path.Combine(dir.Path, "masks", "img000.png");
        using (var small = new Mat(10, 12, MatType.CV_8UC1, Scalar.All(1))) Cv2.ImWrite(mask, small);
        var ds = DatasetFactory.Create(Folder(dir.Path));
        var e = Assert.Throws<BadSampleException>(() => ds.Get(0));
        Assert.Equal(mask, e.File);
        Assert.Contains("12x10", e.Message);
        Assert.Contains("50x40", e.Message);
        Assert.Contains("img000.png", e.Message);
    }

    [Fact]
    public void LabelOutsideTheClassesNamesValueAndPosition()
    {
        using var dir = new TempDir();
        DataFixtures.WriteFolder(dir.Path, 2, 5);
        var maskPath = Path.Combine(dir.Path, "masks", "img001.png");
        using (var m = Cv2.ImRead(maskPath, ImreadModes.Unchanged)) { m.Set(7, 11, (byte)9); Cv2.ImWrite(maskPath, m); }
        var ds = DatasetFactory.Create(Folder(dir.Path));
        var e = Assert.Throws<BadSampleException>(() => ds.Get(1));
        Assert.Equal(maskPath, e.File);
        Assert.Contains("label 9 at (x=11, y=7)", e.Message);
        Assert.Contains("[0, 5)", e.Message);
        // The ignore index itself is fine.
        using (var m = Cv2.ImRead(maskPath, ImreadModes.Unchanged)) { m.Set(7, 11, (byte)255); Cv2.ImWrite(maskPath, m); }
        using var ok = ds.Get(1);
        Assert.Equal(255, ok.Mask.At<byte>(7, 11));
    }

    [Fact]
    public void SkipModeReplacesABadSampleWithTheNextAndCountsIt()
    {
        using var dir = new TempDir();
        DataFixtures.WriteFolder(dir.Path, 3, 5);
        File.WriteAllBytes(Path.Combine(dir.Path, "images", "img001.png"), [0, 0, 0]);
        var ds = (FolderDataset)DatasetFactory.Create(Folder(dir.Path, BadSampleMode.Skip));
        int events = 0;
        ds.BadSamples.Skipped += _ => Interlocked.Increment(ref events);
        using var s = ds.Get(1);
        Assert.Equal("img002", s.Id);
        Assert.Equal(1, ds.BadSamples.Count);
        Assert.Equal(1, events);
        Assert.Contains("img001.png", ds.BadSamples.Messages[0]);
    }

    [Fact]
    public void EmptySplitAndMissingRootAndMissingListAreNamed()
    {
        using var dir = new TempDir();
        dir.Sub("images");
        dir.Sub("masks");
        var empty = Assert.Throws<BadSampleException>(() => DatasetFactory.Create(Folder(dir.Path)));
        Assert.Contains("empty split", empty.Message);
        Assert.Contains("images", empty.File);

        var missing = Path.Combine(dir.Path, "nowhere");
        var root = Assert.Throws<BadSampleException>(() => DatasetFactory.Create(new DatasetOptions { Type = "voc", Root = missing }));
        Assert.Equal(missing, root.File);
        Assert.Contains("does not exist", root.Message);

        DataFixtures.WriteVoc(dir.Path, 1, 1);
        var list = Assert.Throws<BadSampleException>(() => DatasetFactory.Create(new DatasetOptions { Type = "voc", Root = dir.Path, Split = "trainval" }));
        Assert.Contains("trainval.txt", list.Message);

        File.WriteAllText(Path.Combine(dir.Path, "ImageSets", "Segmentation", "none.txt"), "\n");
        var none = Assert.Throws<BadSampleException>(() => DatasetFactory.Create(new DatasetOptions { Type = "voc", Root = dir.Path, Split = "none" }));
        Assert.Contains("empty split", none.Message);
        Assert.Contains("none.txt", none.Message);
    }

    [Fact]
    public void ColourMaskWithoutPaletteIsRejected()
    {
        using var dir = new TempDir();
        DataFixtures.WriteFolder(dir.Path, 1, 5);
        var maskPath = Path.Combine(dir.Path, "masks", "img000.png");
        using (var colour = new Mat(40, 50, MatType.CV_8UC3, Scalar.All(1))) Cv2.ImWrite(maskPath, colour);
        var ds = DatasetFactory.Create(Folder(dir.Path));
        var e = Assert.Throws<BadSampleException>(() => ds.Get(0));
        Assert.Contains("3 channels", e.Message);
        Assert.Equal(maskPath, e.File);
    }
}
