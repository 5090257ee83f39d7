using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.IO.Compression;
using Seg.Core;
using Seg.Core.Readers;

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
        var pixels = ReadIdx(imagesPath, 0x803, [Side, Side]);
        var labels = ReadIdx(labelsPath, 0x801, []);
        int n = pixels.Length / (Side * Side);
        if (labels.Length != n) throw new BadSampleException(labelsPath, $"{labels.Length} labels for {n} images in {imagesPath}");
        int bad = Array.FindIndex(labels, l => l > 9);
        if (bad >= 0) throw new BadSampleException(labelsPath, $"label {labels[bad]} of item {bad} is outside [0, 10)");
        return new FashionMnistIdx(pixels, labels);
    }

    static string Locate(string root, string name) =>
        new[] { name + ".gz", name }.Select(f => Path.Combine(root, f)).FirstOrDefault(File.Exists)
        ?? throw new BadSampleException(Path.Combine(root, name + ".gz"), "Fashion-MNIST file is missing (neither .gz nor plain)");

    /// <summary>
    /// The items of an IDX file of unsigned bytes (plain or gzipped): magic and item count checked, the declared
    /// size checked against the file (for gzip: against deflate's largest ratio and
    /// <see cref="ReaderLimits.MaxDecompressedBytes"/>) before it is allocated, then exactly that many bytes read,
    /// with nothing after them (which for gzip also checks the CRC-32 in its trailer).
    /// </summary>
    static byte[] ReadIdx(string path, int magic, int[] itemShape)
    {
        try
        {
            using var file = File.OpenRead(path);
            bool gz = path.EndsWith(".gz", StringComparison.Ordinal);
            using Stream data = gz ? new GZipStream(file, CompressionMode.Decompress) : file;
            int headerBytes = 8 + 4 * itemShape.Length;
            var header = new byte[headerBytes];
            int got = data.ReadAtLeast(header, headerBytes, throwOnEndOfStream: false);
            if (got < headerBytes) throw new BadSampleException(path, $"file holds {got} bytes, shorter than the {headerBytes}-byte IDX header");
            int m = BinaryPrimitives.ReadInt32BigEndian(header);
            if (m != magic) throw new BadSampleException(path, $"IDX magic number 0x{m:X} is not 0x{magic:X}");
            int count = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(4));
            if (count <= 0) throw new BadSampleException(path, $"IDX header declares {count} items");
            for (int d = 0; d < itemShape.Length; d++)
            {
                int size = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(8 + 4 * d));
                if (size != itemShape[d])
                    throw new BadSampleException(path, $"items are {string.Join("x", itemShape.Select((_, i) => BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(8 + 4 * i))))}, expected {string.Join("x", itemShape)}");
            }
            long bytes = (long)count * itemShape.Aggregate(1, (a, b) => a * b);
            long available = gz ? Math.Min(ReaderLimits.InflateBound(file.Length), ReaderLimits.MaxDecompressedBytes) : file.Length - headerBytes;
            if (bytes > available || bytes > Array.MaxLength)
                throw new BadSampleException(path, gz
                    ? $"IDX header declares {count} items ({ReaderLimits.DescribeBytes(bytes)}), more than {file.Length} gzipped bytes may hold within the decompression limit of {ReaderLimits.DescribeBytes(ReaderLimits.MaxDecompressedBytes)}"
                    : $"IDX header declares {count} items ({bytes} bytes), but the file holds {file.Length - headerBytes} bytes after the header");
            var items = GC.AllocateUninitializedArray<byte>((int)bytes);
            got = data.ReadAtLeast(items, items.Length, throwOnEndOfStream: false);
            if (got < items.Length) throw new BadSampleException(path, $"file ends after {got} of the {bytes} bytes its {count} items need (truncated)");
            if (data.ReadByte() >= 0) throw new BadSampleException(path, $"file holds more than the {count} items its header declares");
            return items;
        }
        catch (InvalidDataException e) { throw new BadSampleException(path, $"corrupt gzip data: {e.Message}", e); }
        catch (IOException e) when (e is not FileNotFoundException) { throw new BadSampleException(path, $"cannot read file: {e.Message}", e); }
    }
}
