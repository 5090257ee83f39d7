using OpenCvSharp;
using Seg.Data;
using Seg.Data.Datasets;
using Seg.Data.Imaging;

namespace Seg.Tests.Data;

/// <summary>A temporary directory removed at dispose.</summary>
public sealed class TempDir : IDisposable
{
    public TempDir() => Directory.CreateDirectory(Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "segdata-" + Guid.NewGuid().ToString("N")));
    public string Path { get; }
    public string Sub(params string[] parts)
    {
        var p = System.IO.Path.Combine([Path, .. parts]);
        Directory.CreateDirectory(p);
        return p;
    }
    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}

/// <summary>Fixture images and masks drawn with OpenCV: blocks of labels, images coloured from the labels.</summary>
public static class DataFixtures
{
    /// <summary>A label map of axis-aligned blocks with labels 0..classes-1 and an optional ignore border.</summary>
    public static Mat BlockMask(int h, int w, int classes, int seed, byte? border = null)
    {
        var rng = new Random(seed);
        var mask = new Mat(h, w, MatType.CV_8UC1, Scalar.All(0));
        for (int k = 0; k < 6; k++)
        {
            int x = rng.Next(w - 8), y = rng.Next(h - 8);
            var rect = new Rect(x, y, Math.Min(w - x, 8 + rng.Next(w / 2)), Math.Min(h - y, 8 + rng.Next(h / 2)));
            mask[rect].SetTo(Scalar.All(rng.Next(classes)));
        }
        if (border is byte b) mask.Rectangle(new Rect(0, 0, w, h), Scalar.All(b), 2);
        return mask;
    }

    /// <summary>The BGR colour the fixture image has for label <paramref name="label"/> (well separated per label).</summary>
    public static Vec3b ColourOf(int label) => new((byte)(40 * (label % 6) + 20), (byte)(255 - 50 * (label % 5)), (byte)(60 * (label % 4) + 10));

    /// <summary>An image whose every pixel has the colour of its label: image drawn from the mask.</summary>
    public static unsafe Mat ImageFromMask(Mat mask)
    {
        int rows = mask.Rows, cols = mask.Cols;
        var image = new Mat(rows, cols, MatType.CV_8UC3);
        for (int y = 0; y < rows; y++)
        {
            byte* m = (byte*)mask.Ptr(y);
            Vec3b* d = (Vec3b*)image.Ptr(y);
            for (int x = 0; x < cols; x++) d[x] = ColourOf(m[x]);
        }
        return image;
    }

    /// <summary>Writes a VOC-layout dataset: JPEGImages, palette SegmentationClass with 255 borders, ImageSets lists.</summary>
    public static void WriteVoc(string root, int train, int val, int h = 60, int w = 80)
    {
        var jpeg = Directory.CreateDirectory(Path.Combine(root, "JPEGImages")).FullName;
        var seg = Directory.CreateDirectory(Path.Combine(root, "SegmentationClass")).FullName;
        var sets = Directory.CreateDirectory(Path.Combine(root, "ImageSets", "Segmentation")).FullName;
        var ids = Enumerable.Range(0, train + val).Select(i => $"2007_{i:D6}").ToArray();
        foreach (var (id, i) in ids.Select((id, i) => (id, i)))
        {
            using var mask = BlockMask(h, w, 21, i, border: 255);
            using var image = ImageFromMask(mask);
            Cv2.ImWrite(Path.Combine(jpeg, id + ".jpg"), image);
            PalettePng.Write(Path.Combine(seg, id + ".png"), mask, VocClasses.Palette);
        }
        File.WriteAllLines(Path.Combine(sets, "train.txt"), ids[..train]);
        File.WriteAllLines(Path.Combine(sets, "val.txt"), ids[train..]);
    }

    /// <summary>Writes a folder dataset: images/*.png + masks/*.png (8-bit index PNGs).</summary>
    public static void WriteFolder(string root, int count, int classes, int h = 40, int w = 50)
    {
        var images = Directory.CreateDirectory(Path.Combine(root, "images")).FullName;
        var masks = Directory.CreateDirectory(Path.Combine(root, "masks")).FullName;
        for (int i = 0; i < count; i++)
        {
            using var mask = BlockMask(h, w, classes, 100 + i);
            using var image = ImageFromMask(mask);
            Cv2.ImWrite(Path.Combine(images, $"img{i:D3}.png"), image);
            Cv2.ImWrite(Path.Combine(masks, $"img{i:D3}.png"), mask);
        }
    }
}
