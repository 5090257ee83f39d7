using System.Buffers.Binary;
using System.IO.Compression;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Bench.SoftmaxFamily;

/// <summary>
/// Reads Fashion-MNIST (Xiao, Rasul and Vollgraf 2017) from its gzipped IDX files, as Debian's
/// <c>dataset-fashion-mnist</c> installs them. Just enough for the softmax-family experiment.
/// </summary>
internal static class FashionMnist
{
    public const string DefaultDirectory = "/usr/share/datasets/fashion-mnist";

    public static readonly string[] ClassNames =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    // Per-pixel statistics of the training images, to centre the inputs.
    const double Mean = 0.2860, Std = 0.3530;

    /// <summary>Images [N,1,28,28] float32 (standardised) and labels [N] int64.</summary>
    public static (Tensor Images, Tensor Labels) Load(string directory, bool train)
    {
        var prefix = train ? "train" : "t10k";
        var (pixels, imageDims) = ReadIdx(Path.Combine(directory, $"{prefix}-images-idx3-ubyte.gz"), 3);
        var (labels, labelDims) = ReadIdx(Path.Combine(directory, $"{prefix}-labels-idx1-ubyte.gz"), 1);
        if (imageDims[0] != labelDims[0])
            throw new InvalidDataException($"{directory}: {imageDims[0]} {prefix} images but {labelDims[0]} labels.");
        using var raw = tensor(pixels, [imageDims[0], 1, imageDims[1], imageDims[2]]);
        var images = (raw.to_type(ScalarType.Float32) / 255.0 - Mean) / Std;
        return (images, tensor(labels).to_type(ScalarType.Int64));
    }

    /// <summary>An IDX file of unsigned bytes: magic 0x00000800 + rank, big-endian sizes, then the data.</summary>
    static (byte[] Data, int[] Dims) ReadIdx(string path, int rank)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException(
                $"{path} not found; install Fashion-MNIST with 'apt-get install -y dataset-fashion-mnist' or pass --data DIR.", path);
        using var stream = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
        using var memory = new MemoryStream();
        stream.CopyTo(memory);
        var bytes = memory.GetBuffer().AsSpan(0, (int)memory.Length);
        var magic = BinaryPrimitives.ReadInt32BigEndian(bytes);
        if (magic != 0x800 + rank)
            throw new InvalidDataException($"{path}: IDX magic 0x{magic:x8}, expected 0x{0x800 + rank:x8} (unsigned bytes, rank {rank}).");
        var dims = new int[rank];
        for (var i = 0; i < rank; i++) dims[i] = BinaryPrimitives.ReadInt32BigEndian(bytes[(4 + 4 * i)..]);
        var offset = 4 + 4 * rank;
        var count = dims.Aggregate(1L, (a, d) => a * d);
        if (bytes.Length - offset != count)
            throw new InvalidDataException($"{path}: header says {count} bytes of data, file has {bytes.Length - offset}.");
        return (bytes[offset..].ToArray(), dims);
    }
}
