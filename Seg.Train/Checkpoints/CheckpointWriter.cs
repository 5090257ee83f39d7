using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text.Json;
using static TorchSharp.torch;

namespace Seg.Train.Checkpoints;

/// <summary>Writes the sections of <see cref="CheckpointFormat"/> to a stream, hashing every byte on the way.</summary>
internal sealed class CheckpointWriter(Stream stream) : IDisposable
{
    readonly IncrementalHash sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

    public void Magic() => Write(CheckpointFormat.Magic);

    public void U8(byte value) => Write([value]);

    public void Json<T>(T value)
    {
        var bytes = JsonSerializer.SerializeToUtf8Bytes(value, CheckpointFormat.Json);
        U32((uint)bytes.Length);
        Write(bytes);
    }

    /// <summary>A tensor table; tensors on any device are copied to the host one at a time.</summary>
    /// <exception cref="NotSupportedException">A tensor that the reader would refuse (name, dtype, rank, size).</exception>
    public void Table(IReadOnlyList<(string Name, Tensor Tensor)> tensors)
    {
        U32((uint)tensors.Count);
        foreach (var (name, tensor) in tensors)
        {
            var nameBytes = CheckpointFormat.StrictUtf8.GetBytes(name);
            var problem = nameBytes.Length is 0 or > CheckpointFormat.MaxNameBytes ? $"its name is {nameBytes.Length} bytes long"
                : !CheckpointFormat.IsKnown(tensor.dtype) ? $"dtype {tensor.dtype} is not supported"
                : tensor.dim() > CheckpointFormat.MaxDims ? $"it has {tensor.dim()} dimensions"
                : tensor.NumberOfElements * tensor.ElementSize > CheckpointFormat.MaxTensorBytes ? "it is larger than 2 GiB"
                : null;
            if (problem is not null) throw new NotSupportedException($"cannot save tensor '{name}' in a checkpoint: {problem}.");
            U16((ushort)nameBytes.Length);
            Write(nameBytes);
            U8((byte)tensor.dtype);
            U8((byte)tensor.dim());
            foreach (var size in tensor.shape) I64(size);
            using var scope = NewDisposeScope();
            var host = tensor.detach().cpu().contiguous();
            if (host.NumberOfElements > 0) Write(host.bytes);
        }
    }

    /// <summary>Appends the SHA-256 of everything written so far.</summary>
    public void Finish() => stream.Write(sha.GetHashAndReset());

    void U16(ushort value)
    {
        Span<byte> b = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(b, value);
        Write(b);
    }

    void U32(uint value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        Write(b);
    }

    void I64(long value)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(b, value);
        Write(b);
    }

    void Write(ReadOnlySpan<byte> bytes)
    {
        sha.AppendData(bytes);
        stream.Write(bytes);
    }

    public void Dispose() => sha.Dispose();
}
