using System.Numerics;
using static TorchSharp.torch;

namespace Seg.Models.Weights;

/// <summary>
/// dtype names of the weight formats, and the one way any reader turns file bytes into a tensor: shape and byte
/// size checked in C# (non-negative dims, at most <see cref="MaxDims"/> of them, no overflow, bytes really in the
/// file) before <c>torch.empty</c> is called, then the bytes streamed straight into the tensor's memory.
/// </summary>
internal static class DTypes
{
    /// <summary>More dimensions than any weight has; ndim beyond it is refused as corrupt.</summary>
    public const int MaxDims = 64;

    public static ScalarType FromStorageName(string name) => name switch
    {
        "DoubleStorage" => ScalarType.Float64,
        "FloatStorage" => ScalarType.Float32,
        "HalfStorage" => ScalarType.Float16,
        "BFloat16Storage" => ScalarType.BFloat16,
        "LongStorage" => ScalarType.Int64,
        "IntStorage" => ScalarType.Int32,
        "ShortStorage" => ScalarType.Int16,
        "CharStorage" => ScalarType.Int8,
        "ByteStorage" => ScalarType.Byte,
        "BoolStorage" => ScalarType.Bool,
        _ => throw new InvalidDataException($"unsupported storage type '{name}'"),
    };

    /// <summary>safetensors dtype codes; null when unknown.</summary>
    public static ScalarType? FromSafetensorsCode(string code) => code switch
    {
        "F64" => ScalarType.Float64,
        "F32" => ScalarType.Float32,
        "F16" => ScalarType.Float16,
        "BF16" => ScalarType.BFloat16,
        "I64" => ScalarType.Int64,
        "I32" => ScalarType.Int32,
        "I16" => ScalarType.Int16,
        "I8" => ScalarType.Int8,
        "U8" => ScalarType.Byte,
        "BOOL" => ScalarType.Bool,
        _ => null,
    };

    /// <summary>TorchSharp's dtype codes (<see cref="ScalarType"/> values, as <c>Module.save</c> writes them) that a
    /// state dict can hold; null for any other number.</summary>
    public static ScalarType? FromTorchSharpCode(long code) => code switch
    {
        (long)ScalarType.Byte => ScalarType.Byte,
        (long)ScalarType.Int8 => ScalarType.Int8,
        (long)ScalarType.Int16 => ScalarType.Int16,
        (long)ScalarType.Int32 => ScalarType.Int32,
        (long)ScalarType.Int64 => ScalarType.Int64,
        (long)ScalarType.Float16 => ScalarType.Float16,
        (long)ScalarType.Float32 => ScalarType.Float32,
        (long)ScalarType.Float64 => ScalarType.Float64,
        (long)ScalarType.ComplexFloat32 => ScalarType.ComplexFloat32,
        (long)ScalarType.ComplexFloat64 => ScalarType.ComplexFloat64,
        (long)ScalarType.Bool => ScalarType.Bool,
        (long)ScalarType.BFloat16 => ScalarType.BFloat16,
        _ => null,
    };

    public static int ElementSize(ScalarType t) => t switch
    {
        ScalarType.ComplexFloat64 => 16,
        ScalarType.Float64 or ScalarType.Int64 or ScalarType.ComplexFloat32 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Int16 => 2,
        ScalarType.Int8 or ScalarType.Byte or ScalarType.Bool => 1,
        _ => throw new NotSupportedException($"dtype {t}"),
    };

    /// <summary>"[2, 3]".</summary>
    public static string Shape(IEnumerable<long> shape) => $"[{string.Join(", ", shape)}]";

    /// <summary>
    /// The byte size of a <paramref name="dtype"/> tensor of <paramref name="shape"/>, or an
    /// <see cref="InvalidDataException"/> naming <paramref name="what"/> (e.g. "path: tensor 'w'") when the shape has
    /// too many or negative dimensions or its element or byte count does not fit 63 bits.
    /// </summary>
    public static long ByteSize(string what, IReadOnlyList<long> shape, ScalarType dtype)
    {
        if (shape.Count > MaxDims) throw new InvalidDataException($"{what} declares {shape.Count} dimensions (at most {MaxDims} are read).");
        BigInteger numel = BigInteger.One;
        for (int i = 0; i < shape.Count; i++)
        {
            if (shape[i] < 0) throw new InvalidDataException($"{what} has negative dimension {shape[i]} in shape {Shape(shape)}.");
            numel *= shape[i];
        }
        var bytes = numel * ElementSize(dtype);
        if (bytes > long.MaxValue)
            throw new InvalidDataException($"{what} declares {Count(numel)} elements of shape {Shape(shape)}, {Count(bytes)} bytes: more than any file holds.");
        // libtorch computes contiguous strides as products of the later dims (zeros counted as 1): those must fit
        // too, or an empty tensor of shape [0, 2^62, 4] fails inside libtorch ("Stride calculation overflowed").
        var strides = shape.Aggregate(BigInteger.One, (a, d) => a * Math.Max(d, 1));
        if (strides > long.MaxValue)
            throw new InvalidDataException($"{what} has shape {Shape(shape)}, whose strides overflow 64 bits.");
        return (long)bytes;
    }

    /// <summary>A count for messages: exact, with its power of two when it is one ("4611686018427387904 (2^62)").</summary>
    public static string Count(BigInteger n) =>
        n > 1 << 20 && n.IsPowerOfTwo ? $"{n} (2^{(int)Math.Round(BigInteger.Log(n, 2))})" : n.ToString();

    /// <summary>
    /// A new CPU tensor filled with <paramref name="byteCount"/> little-endian bytes read from <paramref name="source"/>.
    /// The caller has checked <paramref name="byteCount"/> with <see cref="ByteSize"/> and against the bytes the file
    /// really has; a stream that ends early is reported as truncated. <paramref name="onRead"/> sees every chunk
    /// (for a checksum).
    /// </summary>
    public static Tensor ReadTensor(Stream source, long byteCount, ScalarType dtype, long[] shape, string what, Action<ReadOnlySpan<byte>>? onRead = null)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("weight files are little-endian; this host is not");
        int size = ElementSize(dtype);
        long numel = byteCount / size;
        var flat = empty(numel, dtype);
        try
        {
            long done = 0;
            // Tensor.bytes spans at most 2 GiB, so larger tensors are filled through 1 GiB slices.
            long perPiece = (1L << 30) / size;
            for (long start = 0; start < numel; start += perPiece)
            {
                long count = Math.Min(perPiece, numel - start);
                using var piece = count == numel ? null : flat.narrow(0, start, count);
                var span = (piece ?? flat).bytes;
                for (int at = 0; at < span.Length;)
                {
                    int chunk = Math.Min(span.Length - at, 1 << 20);
                    int n = source.ReadAtLeast(span.Slice(at, chunk), chunk, throwOnEndOfStream: false);
                    onRead?.Invoke(span.Slice(at, n));
                    at += n;
                    done += n;
                    if (n < chunk) throw new InvalidDataException($"{what} is truncated: its data ends after {done} of {byteCount} bytes.");
                }
            }
            return flat.reshape(shape);
        }
        finally
        {
            flat.Dispose();
        }
    }

    /// <summary>Reads exactly <paramref name="count"/> bytes into a new array (after the caller's size checks), or
    /// reports truncation naming <paramref name="what"/>.</summary>
    public static byte[] ReadBytes(Stream source, int count, string what, Action<ReadOnlySpan<byte>>? onRead = null)
    {
        var buffer = GC.AllocateUninitializedArray<byte>(count);
        int n = source.ReadAtLeast(buffer, count, throwOnEndOfStream: false);
        onRead?.Invoke(buffer.AsSpan(0, n));
        if (n < count) throw new InvalidDataException($"{what} is truncated: its data ends after {n} of {count} bytes.");
        return buffer;
    }
}
