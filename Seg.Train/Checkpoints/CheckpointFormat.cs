using System.Text;
using System.Text.Json;
using static TorchSharp.torch;

namespace Seg.Train.Checkpoints;

/// <summary>
/// The <c>.ckpt</c> layout (format 2), little-endian:
/// <code>
///   "SEGCKPT2"                                   8 bytes
///   header       u32 n, n bytes of UTF-8 JSON    (CheckpointState)
///   model        tensor table
///   optimizer    u8 0, or u8 1, u32 n, n bytes of UTF-8 JSON (OptimizerMeta), tensor table
///   loss state   u8 0, or u8 1, tensor table
///   SHA-256 of every byte above                  32 bytes
/// tensor table:  u32 count, then per tensor: u16 n, n bytes of UTF-8 name, u8 dtype (TorchSharp ScalarType code),
///                u8 ndim, ndim × i64 sizes, then the elements, row-major (numel × element size bytes)
/// </code>
/// Every length is explicit, so a reader checks each against the bytes that remain before it allocates; the hash
/// catches truncation and flipped bytes before anything is parsed.
/// </summary>
internal static class CheckpointFormat
{
    public static ReadOnlySpan<byte> Magic => "SEGCKPT2"u8;

    /// <summary>What format 1 began with: BinaryWriter's length-prefixed "SEGCKPT1".</summary>
    public static ReadOnlySpan<byte> MagicVersion1 => "\u0008SEGCKPT1"u8;

    public const int HashBytes = 32;

    /// <summary>The header holds the config text (at most 1 MiB, up to 6 bytes per character once JSON-escaped),
    /// class names, palette and RNG state.</summary>
    public const int MaxHeaderBytes = 16 << 20;

    public const int MaxOptimizerMetaBytes = 1 << 20;
    public const int MaxNameBytes = 1024;
    public const int MaxDims = 8;

    /// <summary>The largest single tensor: one .NET array.</summary>
    public static long MaxTensorBytes => Array.MaxLength;

    /// <summary>Bytes of the smallest tensor record (one-byte name, scalar): name length, name, dtype, ndim.</summary>
    public const int MinRecordBytes = 2 + 1 + 1 + 1;

    public static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Strict JSON: no missing or null members, no repeated keys, shallow.</summary>
    public static readonly JsonSerializerOptions Json = new()
    {
        RespectNullableAnnotations = true,
        RespectRequiredConstructorParameters = true,
        AllowDuplicateProperties = false,
        MaxDepth = 8,
    };

    /// <summary>The dtypes a checkpoint may hold (those Seg's models and optimizers use, and their kin).</summary>
    public static bool IsKnown(ScalarType dtype) => dtype is ScalarType.Byte or ScalarType.Int8 or ScalarType.Int16
        or ScalarType.Int32 or ScalarType.Int64 or ScalarType.Float16 or ScalarType.Float32 or ScalarType.Float64
        or ScalarType.Bool or ScalarType.BFloat16;

    public static string Describe(ScalarType dtype, IEnumerable<long> shape) => $"{dtype}[{string.Join(", ", shape)}]";
}

/// <summary>A tensor as a checkpoint lists it: name, dtype, shape, and where its bytes lie in the file.</summary>
internal sealed record TensorRecord(string Name, ScalarType DType, long[] Shape, long Offset, long ByteCount)
{
    public override string ToString() => $"'{Name}' {CheckpointFormat.Describe(DType, Shape)}";
}
