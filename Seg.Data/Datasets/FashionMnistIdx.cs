using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.IO.Compression;

namespace Seg.Data.Datasets;

/// <summary>
/// Fashion-MNIST in its IDX files (optionally gzipped): 28×28 grey images and labels 0–9. One split is read once
/// per process and shared by every dataset that uses it.
/// </summary>
public sealed class FashionMnistIdx
{
    /// <summary>Default location: Debian's <c>dataset-fashion-mnist</c> package.</summary>
    public const string DefaultRoot = "/usr/share/datasets/fashion-mnist";

    /// <summary>Fashion-MNIST's 10 class names, label order.</summary>
    public static readonly IReadOnlyList<string> Names =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    /// <summary>Image side in pixels.</summary>
    public const int Side = 28;

    static readonly ConcurrentDictionary<string, Lazy<FashionMnistIdx>> Cache = new();

    FashionMnistIdx(byte[] pixels, byte[] labels) => (Pixels, Labels) = (pixels, labels);

    /// <summary>All images, row-major, 784 bytes each.</summary>
    public byte[] Pixels { get; }

    /// <summary>One label (0–9) per image.</summary>
    public byte[] Labels { get; }

    /// <summary>Number of images.</summary>
    public int Count => Labels.Length;

    /// <summary>Loads (once) the <c>train</c> or <c>t10k</c> files under <paramref name="root"/>.</summary>
    public static FashionMnistIdx Load(string root, string prefix)
    {
        var key = Path.GetFullPath(root) + "|" + prefix;
        try
        {
            return Cache.GetOrAdd(key, _ => new Lazy<FashionMnistIdx>(() => Read(root, prefix))).Value;
        }
        catch
        {
            Cache.TryRemove(key, out _); // let a corrected file be read on the next try
            throw;
        }
    }

    static FashionMnistIdx Read(string root, string prefix)
    {
        if (!Directory.Exists(root)) throw new BadSampleException(root, "Fashion-MNIST root does not exist (apt-get install dataset-fashion-mnist, or set 'root')");
        var imagesPath = Locate(root, $"{prefix}-images-idx3-ubyte");
        var labelsPath = Locate(root, $"{prefix}-labels-idx1-ubyte");
        var images = ReadAll(imagesPath);
        var labels = ReadAll(labelsPath);
        int n = Header(images, imagesPath, 0x803, 16);
        int rows = BinaryPrimitives.ReadInt32BigEndian(images.AsSpan(8)), cols = BinaryPrimitives.ReadInt32BigEndian(images.AsSpan(12));
        if (rows != Side || cols != Side) throw new BadSampleException(imagesPath, $"images are {rows}x{cols}, expected {Side}x{Side}");
        if (images.Length < 16 + (long)n * Side * Side) throw new BadSampleException(imagesPath, $"file holds {images.Length} bytes, too few for {n} images");
        int m = Header(labels, labelsPath, 0x801, 8);
        if (m != n) throw new BadSampleException(labelsPath, $"{m} labels for {n} images in {imagesPath}");
        if (labels.Length < 8 + m) throw new BadSampleException(labelsPath, $"file holds {labels.Length} bytes, too few for {m} labels");
        var lab = labels.AsSpan(8, m).ToArray();
        int bad = Array.FindIndex(lab, l => l > 9);
        if (bad >= 0) throw new BadSampleException(labelsPath, $"label {lab[bad]} of item {bad} is outside [0, 10)");
        return new FashionMnistIdx(images.AsSpan(16, n * Side * Side).ToArray(), lab);
    }

    static string Locate(string root, string name) =>
        new[] { name + ".gz", name }.Select(f => Path.Combine(root, f)).FirstOrDefault(File.Exists)
        ?? throw new BadSampleException(Path.Combine(root, name + ".gz"), "Fashion-MNIST file is missing (neither .gz nor plain)");

    static byte[] ReadAll(string path)
    {
        try
        {
            using var file = File.OpenRead(path);
            using var output = new MemoryStream();
            if (path.EndsWith(".gz", StringComparison.Ordinal)) { using var gz = new GZipStream(file, CompressionMode.Decompress); gz.CopyTo(output); }
            else file.CopyTo(output);
            return output.ToArray();
        }
        catch (InvalidDataException e) { throw new BadSampleException(path, $"corrupt gzip data: {e.Message}", e); }
    }

    static int Header(byte[] data, string path, int magic, int headerBytes)
    {
        if (data.Length < headerBytes) throw new BadSampleException(path, $"file is {data.Length} bytes, shorter than the IDX header");
        int got = BinaryPrimitives.ReadInt32BigEndian(data);
        if (got != magic) throw new BadSampleException(path, $"IDX magic number 0x{got:X} is not 0x{magic:X}");
        return BinaryPrimitives.ReadInt32BigEndian(data.AsSpan(4));
    }
}
