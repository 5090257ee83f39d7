using System.Buffers;
using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using static TorchSharp.torch;
using Seg.Platform.IO;

namespace Seg.Train.Checkpoints;

/// <summary>
/// Opens a <see cref="CheckpointFormat"/> file as hostile input: first the magic, then the SHA-256 over all but
/// the last 32 bytes, then the structure, each declared length and count checked against the bytes that remain
/// before anything is allocated. Tensor bytes stay in the file until <see cref="ReadBytes"/>. Every failure is an
/// <see cref="InvalidDataException"/> whose message starts with the file's path.
/// </summary>
internal sealed class CheckpointReader : IDisposable
{
    readonly FileStream stream;
    readonly string path;
    long end;   // where the hash starts

    CheckpointReader(string path)
    {
        this.path = path;
        stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16);
    }

    public CheckpointState State { get; private set; } = null!;
    public IReadOnlyList<TensorRecord> Model { get; private set; } = [];
    public OptimizerMeta? OptimizerMeta { get; private set; }
    public IReadOnlyList<TensorRecord> OptimizerTensors { get; private set; } = [];
    public IReadOnlyList<TensorRecord>? LossState { get; private set; }

    /// <summary>Opens and checks <paramref name="path"/> completely.</summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="InvalidDataException">Not a Seg checkpoint, damaged, or malformed.</exception>
    /// <exception cref="IOException">The file could not be read.</exception>
    public static CheckpointReader Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"checkpoint not found: {path}", path);
        CheckpointReader? reader = null;
        try
        {
            FileChecks.RequireRegularFile(path, "checkpoint");   // before opening: a FIFO would block the reader
            reader = new CheckpointReader(path);
            reader.Parse();
            return reader;
        }
        catch (Exception e) when (e is IOException and not FileNotFoundException)
        {
            reader?.Dispose();
            throw new IOException($"{path}: cannot read the checkpoint: {e.Message}", e);
        }
        catch
        {
            reader?.Dispose();
            throw;
        }
    }

    /// <summary>The bytes of one tensor.</summary>
    public byte[] ReadBytes(TensorRecord record)
    {
        var bytes = GC.AllocateUninitializedArray<byte>((int)record.ByteCount);
        stream.Position = record.Offset;
        stream.ReadExactly(bytes);
        return bytes;
    }

    /// <summary>A host tensor holding the bytes of <paramref name="record"/> (dtype and shape checked at open).</summary>
    public Tensor ReadTensor(TensorRecord record)
    {
        var bytes = ReadBytes(record);
        var tensor = empty(record.Shape, record.DType);
        if (bytes.Length > 0) tensor.bytes = bytes;
        return tensor;
    }

    /// <summary>An error about this file.</summary>
    public InvalidDataException Bad(string problem) => new($"{path}: {problem}");

    void Parse()
    {
        var length = stream.Length;
        Span<byte> magic = stackalloc byte[CheckpointFormat.MagicVersion1.Length];
        var got = stream.ReadAtLeast(magic, magic.Length, throwOnEndOfStream: false);
        if (got >= CheckpointFormat.MagicVersion1.Length && magic.SequenceEqual(CheckpointFormat.MagicVersion1))
            throw Bad("written by an earlier Seg in checkpoint format 1, which carries no integrity hash, so it cannot be verified; " +
                      "train again to get a format 2 checkpoint");
        if (got < CheckpointFormat.Magic.Length || !magic[..CheckpointFormat.Magic.Length].SequenceEqual(CheckpointFormat.Magic))
            throw Bad("not a Seg checkpoint (it does not start with SEGCKPT2)");
        const int smallest = 8 + 4 + 4 + 1 + 1 + CheckpointFormat.HashBytes;
        if (length < smallest) throw Bad($"truncated: {length} bytes, less than the {smallest} of the smallest checkpoint");
        end = length - CheckpointFormat.HashBytes;
        VerifyHash();

        stream.Position = CheckpointFormat.Magic.Length;
        State = ReadJson<CheckpointState>("header", CheckpointFormat.MaxHeaderBytes);
        if (State.Problem() is { } problem) throw Bad($"its header is not valid: {problem}");
        Model = ReadTable("model");
        if (ReadFlag("optimizer"))
        {
            OptimizerMeta = ReadJson<OptimizerMeta>("optimizer description", CheckpointFormat.MaxOptimizerMetaBytes);
            OptimizerTensors = ReadTable("optimizer");
        }
        LossState = ReadFlag("loss state") ? ReadTable("loss state") : null;
        if (stream.Position != end) throw Bad($"{end - stream.Position} unexpected bytes after the last section, at byte {stream.Position}");
    }

    void VerifyHash()
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = ArrayPool<byte>.Shared.Rent(1 << 20);
        try
        {
            stream.Position = 0;
            for (var left = end; left > 0;)
            {
                var n = stream.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
                if (n == 0) throw Bad("the file became shorter while it was read");
                sha.AppendData(buffer, 0, n);
                left -= n;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        Span<byte> stored = stackalloc byte[CheckpointFormat.HashBytes];
        stream.ReadExactly(stored);
        if (!CryptographicOperations.FixedTimeEquals(sha.GetHashAndReset(), stored))
            throw Bad("damaged: the SHA-256 stored at its end does not match its content (the file was truncated or altered after it was written)");
    }

    T ReadJson<T>(string what, int limit) where T : class
    {
        var offset = stream.Position;
        var length = U32($"the {what}'s length");
        if (length > limit) throw Bad($"the {what} at byte {offset} declares {length} bytes, more than the limit of {limit}");
        var bytes = Take(length, $"the {what}");
        try
        {
            return JsonSerializer.Deserialize<T>(bytes, CheckpointFormat.Json) ?? throw Bad($"the {what} is null");
        }
        catch (JsonException e)
        {
            throw Bad($"the {what} is not valid: {e.Message}");
        }
    }

    bool ReadFlag(string section)
    {
        var offset = stream.Position;
        return U8($"the {section} flag") switch
        {
            0 => false,
            1 => true,
            var v => throw Bad($"the {section} flag at byte {offset} is {v}; 0 or 1 belongs there"),
        };
    }

    IReadOnlyList<TensorRecord> ReadTable(string section)
    {
        var offset = stream.Position;
        var count = U32($"the {section} tensor count");
        if (count > Remaining / CheckpointFormat.MinRecordBytes)
            throw Bad($"the {section} section at byte {offset} declares {count} tensors; the {Remaining} bytes that remain hold at most {Remaining / CheckpointFormat.MinRecordBytes}");
        var records = new List<TensorRecord>((int)count);
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < count; i++)
        {
            var record = ReadRecord(section, i);
            if (!names.Add(record.Name)) throw Bad($"the {section} section holds tensor '{record.Name}' twice");
            records.Add(record);
        }
        return records;
    }

    TensorRecord ReadRecord(string section, int index)
    {
        var at = stream.Position;
        var nameLength = U16($"{section} tensor {index}'s name length");
        if (nameLength is 0 or > CheckpointFormat.MaxNameBytes)
            throw Bad($"{section} tensor {index} at byte {at} has a name of {nameLength} bytes; names are 1 to {CheckpointFormat.MaxNameBytes} bytes");
        string name;
        try { name = CheckpointFormat.StrictUtf8.GetString(Take(nameLength, $"{section} tensor {index}'s name")); }
        catch (DecoderFallbackException) { throw Bad($"{section} tensor {index} at byte {at} has a name that is not UTF-8"); }
        var code = U8($"tensor '{name}''s dtype");
        var dtype = (ScalarType)code;
        if (!CheckpointFormat.IsKnown(dtype)) throw Bad($"{section} tensor '{name}' has dtype code {code}, which Seg checkpoints do not use");
        var ndim = U8($"tensor '{name}''s rank");
        if (ndim > CheckpointFormat.MaxDims) throw Bad($"{section} tensor '{name}' declares {ndim} dimensions; at most {CheckpointFormat.MaxDims} are allowed");
        var shape = new long[ndim];
        for (var d = 0; d < ndim; d++)
        {
            shape[d] = I64($"tensor '{name}''s size {d}");
            if (shape[d] < 0) throw Bad($"{section} tensor '{name}' has size {shape[d]} in dimension {d}");
        }
        var elementSize = TorchSharp.TensorExtensionMethods.ElementSize(dtype);
        var available = Math.Min(Remaining, CheckpointFormat.MaxTensorBytes) / elementSize;   // elements that fit
        long elements = 1;
        foreach (var size in shape)
            if (size == 0) elements = 0;
            else if (elements != 0 && elements > available / size)
                throw Bad($"{section} tensor '{name}' {CheckpointFormat.Describe(dtype, shape)} declares more elements than fit " +
                          $"in the {Remaining} bytes that remain{(Remaining > CheckpointFormat.MaxTensorBytes ? " (or in one 2 GiB tensor)" : "")}");
            else elements *= size;
        var bytes = elements * elementSize;
        if (bytes > Remaining) throw Bad($"{section} tensor '{name}' {CheckpointFormat.Describe(dtype, shape)} declares {bytes} bytes, but only {Remaining} remain");
        var record = new TensorRecord(name, dtype, shape, stream.Position, bytes);
        stream.Seek(bytes, SeekOrigin.Current);
        return record;
    }

    long Remaining => end - stream.Position;

    byte[] Take(long count, string what)
    {
        if (count > Remaining) throw Bad($"{what} at byte {stream.Position} declares {count} bytes, but only {Remaining} remain");
        var bytes = new byte[count];
        stream.ReadExactly(bytes);
        return bytes;
    }

    byte U8(string what) => Take(1, what)[0];
    ushort U16(string what) => BinaryPrimitives.ReadUInt16LittleEndian(Take(2, what));
    uint U32(string what) => BinaryPrimitives.ReadUInt32LittleEndian(Take(4, what));
    long I64(string what) => BinaryPrimitives.ReadInt64LittleEndian(Take(8, what));

    public void Dispose() => stream.Dispose();
}
