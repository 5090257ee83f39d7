using OpenCvSharp;
using Seg.Data;
using Seg.Data.Datasets;
using Seg.Data.Imaging;

namespace Seg.Tests.Data;

public class FileDatasetTests
{
    [Fact]
    public void VocReadsImagesAndPaletteIndicesWithBorders()
    {
        using var dir = new TempDir();
        DataFixtures.WriteVoc(dir.Path, train: 3, val: 2);
        var train = DatasetFactory.Create(new DatasetOptions { Type = "voc", Root = dir.Path, Split = "train" });
        var val = DatasetFactory.Create(new DatasetOptions { Type = "voc", Root = dir.Path, Split = "val" });
        Assert.Equal(3, train.Count);
        Assert.Equal(2, val.Count);
        Assert.Equal(21, train.NumClasses);
        Assert.Equal("aeroplane", train.ClassNames[1]);

        using var s = val.Get(1);
        Assert.Equal("2007_000004", s.Id);
        using var expected = DataFixtures.BlockMask(60, 80, 21, seed: 4, border: 255);
        Assert.Equal(MatType.CV_8UC1, s.Mask.Type());
        using var diff = new Mat();
        Cv2.Absdiff(expected, s.Mask, diff);
        Assert.Equal(0, Cv2.CountNonZero(diff));
        Assert.Equal(255, s.Mask.At<byte>(0, 0)); // the border stays the ignore index
        Assert.Equal(MatType.CV_8UC3, s.Image.Type());
        Assert.Equal(new Size(80, 60), s.Image.Size());
    }

    [Fact]
    public void VocTakesSegmentationClassAugMasksAndAugLists()
    {
        using var dir = new TempDir();
        DataFixtures.WriteVoc(dir.Path, train: 2, val: 1);
        // An SBD-only id: image in JPEGImages, 8-bit index mask only in SegmentationClassAug, listed in train_aug.
        var aug = dir.Sub("SegmentationClassAug");
        using (var mask = DataFixtures.BlockMask(60, 80, 21, seed: 9))
        using (var image = DataFixtures.ImageFromMask(mask))
        {
            Cv2.ImWrite(Path.Combine(dir.Path, "JPEGImages", "2008_000009.jpg"), image);
            Cv2.ImWrite(Path.Combine(aug, "2008_000009.png"), mask);
        }
        File.WriteAllLines(Path.Combine(dir.Sub("ImageSets", "SegmentationAug"), "train_aug.txt"), ["2007_000000", "2008_000009"]);
        var ds = DatasetFactory.Create(new DatasetOptions { Type = "voc", Root = dir.Path, Split = "train_aug" });
        Assert.Equal(2, ds.Count);
        using var s = ds.Get(1);
        using var expected = DataFixtures.BlockMask(60, 80, 21, seed: 9);
        using var diff = new Mat();
        Cv2.Absdiff(expected, s.Mask, diff);
        Assert.Equal(0, Cv2.CountNonZero(diff));
    }

    [Fact]
    public void FolderWithoutSplitFoldersSharesEveryFileAndIsWarnedAbout()
    {
        using var dir = new TempDir();
        DataFixtures.WriteFolder(dir.Path, count: 3, classes: 3);
        var train = DatasetFactory.Create(new DatasetOptions { Type = "folder", Root = dir.Path, Split = "train" });
        var val = DatasetFactory.Create(new DatasetOptions { Type = "folder", Root = dir.Path, Split = "val" });
        Assert.Equal(3, SplitOverlap.Count(train, val));
        var warning = SplitOverlap.Warning(train, val);
        Assert.NotNull(warning);
        Assert.StartsWith("3 of the 3 validation images are also training images", warning);
        Assert.Contains("images/val/", warning);
    }

    [Fact]
    public void FolderWithSplitFoldersIsNotWarnedAbout()
    {
        using var dir = new TempDir();
        DataFixtures.WriteFolder(Path.Combine(dir.Path, "t"), count: 2, classes: 3);
        DataFixtures.WriteFolder(Path.Combine(dir.Path, "v"), count: 2, classes: 3);
        foreach (var (from, split) in new[] { ("t", "train"), ("v", "val") })
            foreach (var kind in new[] { "images", "masks" })
            {
                Directory.CreateDirectory(Path.Combine(dir.Path, kind));
                Directory.Move(Path.Combine(dir.Path, from, kind), Path.Combine(dir.Path, kind, split));
            }
        var train = DatasetFactory.Create(new DatasetOptions { Type = "folder", Root = dir.Path, Split = "train" });
        var val = DatasetFactory.Create(new DatasetOptions { Type = "folder", Root = dir.Path, Split = "val" });
        Assert.Equal((2, 2), (train.Count, val.Count));
        Assert.Equal(0, SplitOverlap.Count(train, val));
        Assert.Null(SplitOverlap.Warning(train, val));
    }

    [Fact]
    public void FolderPairsStemsAndInfersClassCount()
    {
        using var dir = new TempDir();
        DataFixtures.WriteFolder(dir.Path, count: 4, classes: 5);
        var ds = (FolderDataset)DatasetFactory.Create(new DatasetOptions { Type = "folder", Root = dir.Path });
        Assert.Equal(4, ds.Count);
        // Oracle: the largest label among the fixture masks, computed directly from the generator.
        int max = Enumerable.Range(0, 4).Max(i => { using var m = DataFixtures.BlockMask(40, 50, 5, 100 + i); m.MinMaxLoc(out double _, out double hi); return (int)hi; });
        Assert.Equal(max + 1, ds.NumClasses);
        using var s = ds.Get(2);
        Assert.Equal("img002", s.Id);
        using var expected = DataFixtures.BlockMask(40, 50, 5, 102);
        using var diff = new Mat();
        Cv2.Absdiff(expected, s.Mask, diff);
        Assert.Equal(0, Cv2.CountNonZero(diff));
    }

    [Fact]
    public void CityscapesMapsLabelIdsToTrainIds()
    {
        using var dir = new TempDir();
        var img = dir.Sub("leftImg8bit", "val", "aachen");
        var gt = dir.Sub("gtFine", "val", "aachen");
        // Hand-worked row of label ids and their train ids from cityscapesScripts' labels.py.
        byte[] ids = [0, 1, 7, 8, 11, 13, 17, 24, 26, 33, 5, 34 - 1, 23, 20];
        byte[] train = [255, 255, 0, 1, 2, 4, 5, 11, 13, 18, 255, 18, 10, 7];
        using (var mask = new Mat(2, ids.Length, MatType.CV_8UC1))
        {
            for (int x = 0; x < ids.Length; x++) { mask.Set(0, x, ids[x]); mask.Set(1, x, ids[x]); }
            Cv2.ImWrite(Path.Combine(gt, "aachen_000000_000019_gtFine_labelIds.png"), mask);
            using var image = new Mat(2, ids.Length, MatType.CV_8UC3, Scalar.All(90));
            Cv2.ImWrite(Path.Combine(img, "aachen_000000_000019_leftImg8bit.png"), image);
        }
        var ds = DatasetFactory.Create(new DatasetOptions { Type = "cityscapes", Root = dir.Path, Split = "val" });
        Assert.Equal(19, ds.NumClasses);
        using var s = ds.Get(0);
        Assert.Equal("aachen_000000_000019", s.Id);
        for (int x = 0; x < ids.Length; x++) Assert.Equal(train[x], s.Mask.At<byte>(1, x));

        // With an ignore index that does not fit a byte the mask widens to CV_32S.
        var wide = DatasetFactory.Create(new DatasetOptions { Type = "cityscapes", Root = dir.Path, Split = "val", IgnoreIndex = -1 });
        using var w = wide.Get(0);
        Assert.Equal(MatType.CV_32SC1, w.Mask.Type());
        for (int x = 0; x < ids.Length; x++) Assert.Equal(train[x] == 255 ? -1 : train[x], w.Mask.At<int>(0, x));
    }

    [Fact]
    public void CityscapesRejectsValuesThatAreNoLabelId()
    {
        using var dir = new TempDir();
        var img = dir.Sub("leftImg8bit", "train", "bonn");
        var gt = dir.Sub("gtFine", "train", "bonn");
        using (var mask = new Mat(3, 3, MatType.CV_8UC1, Scalar.All(7))) { mask.Set(1, 2, (byte)200); Cv2.ImWrite(Path.Combine(gt, "b_gtFine_labelIds.png"), mask); }
        using (var image = new Mat(3, 3, MatType.CV_8UC3, Scalar.All(9))) Cv2.ImWrite(Path.Combine(img, "b_leftImg8bit.png"), image);
        var ds = DatasetFactory.Create(new DatasetOptions { Type = "cityscapes", Root = dir.Path });
        var e = Assert.Throws<BadSampleException>(() => ds.Get(0));
        Assert.Contains("b_gtFine_labelIds.png", e.Message);
        Assert.Contains("200", e.Message);
        Assert.Contains("x=2, y=1", e.Message);
    }

    [Fact]
    public void UnknownTypeAndWrongClassCountListTheValidValues()
    {
        var e = Assert.Throws<ArgumentException>(() => DatasetFactory.Create(new DatasetOptions { Type = "coco" }));
        Assert.Contains("'coco'", e.Message);
        foreach (var t in DatasetFactory.Types) Assert.Contains(t, e.Message);
        var n = Assert.Throws<ArgumentException>(() => DatasetFactory.Create(new DatasetOptions { Type = "shapes", NumClasses = 7 }));
        Assert.Contains("num_classes", n.Message);
        Assert.Contains("4", n.Message);
    }
}
