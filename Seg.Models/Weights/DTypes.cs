using static TorchSharp.torch;

namespace Seg.Models.Weights;

/// <summary>dtype names of the weight formats and raw little-endian bytes to tensors.</summary>
internal static class DTypes
{
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

    public static int ElementSize(ScalarType t) => t switch
    {
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Int16 => 2,
        ScalarType.Int8 or ScalarType.Byte or ScalarType.Bool => 1,
        _ => throw new NotSupportedException($"dtype {t}"),
    };

    /// <summary>A new CPU tensor holding a copy of <paramref name="bytes"/> (little-endian, row-major).</summary>
    public static Tensor FromBytes(Span<byte> bytes, ScalarType dtype, long[] shape)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("weight files are little-endian; this host is not");
        var t = empty(shape, dtype);
        if (bytes.Length > 0) t.bytes = bytes;
        return t;
    }
}
