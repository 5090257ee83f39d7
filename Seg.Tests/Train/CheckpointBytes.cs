using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace Seg.Tests.Train;

/// <summary>
/// Builds and edits <c>.ckpt</c> bytes by the documented layout (see CheckpointFormat): magic, u32-prefixed JSON
/// header, tensor tables, flags, and a SHA-256 of everything before it. Tests use it to make files whose hash is
/// right but whose content is hostile, which only a structural check can refuse.
/// </summary>
internal static class CheckpointBytes
{
    public static readonly byte[] Magic = "SEGCKPT2"u8.ToArray();

    /// <summary>The same bytes with the trailing SHA-256 recomputed (the content is everything but the last 32 bytes).</summary>
    public static byte[] Rehash(byte[] file)
    {
        var copy = (byte[])file.Clone();
        SHA256.HashData(copy.AsSpan(0, copy.Length - 32), copy.AsSpan(copy.Length - 32));
        return copy;
    }

    /// <summary>Content plus its SHA-256.</summary>
    public static byte[] Seal(byte[] content) => [.. content, .. SHA256.HashData(content)];

    /// <summary>The header JSON of a checkpoint file, as a node.</summary>
    public static JsonObject Header(byte[] file)
    {
        var length = (int)BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(8));
        return JsonNode.Parse(file.AsSpan(12, length))!.AsObject();
    }

    /// <summary>The file with its header replaced by <paramref name="json"/> (and the hash redone).</summary>
    public static byte[] WithHeader(byte[] file, string json)
    {
        var oldLength = (int)BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(8));
        var header = Encoding.UTF8.GetBytes(json);
        var content = new List<byte>(Magic);
        content.AddRange(U32((uint)header.Length));
        content.AddRange(header);
        content.AddRange(file.AsSpan(12 + oldLength, file.Length - 32 - 12 - oldLength).ToArray());
        return Seal([.. content]);
    }

    /// <summary>Index of the first occurrence of <paramref name="needle"/> at or after <paramref name="from"/>.</summary>
    public static int Find(byte[] file, byte[] needle, int from = 0)
    {
        var i = file.AsSpan(from).IndexOf(needle);
        return i < 0 ? throw new InvalidOperationException($"'{Encoding.UTF8.GetString(needle)}' not found") : from + i;
    }

    public static byte[] U16(ushort v) { var b = new byte[2]; BinaryPrimitives.WriteUInt16LittleEndian(b, v); return b; }
    public static byte[] U32(uint v) { var b = new byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, v); return b; }
    public static byte[] I64(long v) { var b = new byte[8]; BinaryPrimitives.WriteInt64LittleEndian(b, v); return b; }

    /// <summary>A tensor record: name, dtype code, shape, and <paramref name="data"/> as the element bytes.</summary>
    public static byte[] Record(string name, byte dtype, long[] shape, byte[] data)
    {
        var nameBytes = Encoding.UTF8.GetBytes(name);
        return [.. U16((ushort)nameBytes.Length), .. nameBytes, dtype, (byte)shape.Length, .. shape.SelectMany(I64), .. data];
    }

    /// <summary>A whole file: <paramref name="header"/>, a model table of <paramref name="records"/> (count given
    /// separately so it can lie), no optimizer, no loss state.</summary>
    public static byte[] File(string header, uint count, params byte[][] records)
    {
        var h = Encoding.UTF8.GetBytes(header);
        return Seal([.. Magic, .. U32((uint)h.Length), .. h, .. U32(count), .. records.SelectMany(r => r), 0, 0]);
    }

    /// <summary>Where a tensor's record and data lie in a checkpoint.</summary>
    public sealed record TensorAt(string Section, string Name, byte DType, long[] Shape, int DataAt, long Bytes);

    /// <summary>
    /// Walks a checkpoint by the documented layout: every length, count, dtype, rank and size field (offset, width,
    /// what), and every tensor.
    /// </summary>
    public static (List<(int Offset, int Width, string What)> Fields, List<TensorAt> Tensors) Layout(byte[] file)
    {
        var fields = new List<(int, int, string)>();
        var tensors = new List<TensorAt>();
        var p = 8;
        fields.Add((p, 4, "header_length"));
        p += 4 + (int)BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(p));
        p = Table(p, "model");
        fields.Add((p, 1, "optimizer_flag"));
        if (file[p++] == 1)
        {
            fields.Add((p, 4, "optimizer_json_length"));
            p += 4 + (int)BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(p));
            p = Table(p, "optimizer");
        }
        fields.Add((p, 1, "loss_flag"));
        if (file[p++] == 1) Table(p, "loss");
        return (fields, tensors);

        int Table(int at, string section)
        {
            fields.Add((at, 4, section + "_count"));
            var count = BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(at));
            at += 4;
            for (var i = 0; i < count; i++)
            {
                fields.Add((at, 2, $"{section}{i}_name_length"));
                var nameLength = BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(at));
                var name = Encoding.UTF8.GetString(file, at + 2, nameLength);
                at += 2 + nameLength;
                fields.Add((at, 1, $"{section}{i}_dtype"));
                var dtype = file[at++];
                fields.Add((at, 1, $"{section}{i}_ndim"));
                var shape = new long[file[at++]];
                for (var d = 0; d < shape.Length; d++, at += 8)
                {
                    fields.Add((at, 8, $"{section}{i}_size{d}"));
                    shape[d] = BinaryPrimitives.ReadInt64LittleEndian(file.AsSpan(at));
                }
                var elementSize = dtype switch { 0 or 1 or 11 => 1, 2 or 5 or 15 => 2, 3 or 6 => 4, _ => 8 };
                var bytes = shape.Aggregate(1L, (a, b) => a * b) * elementSize;
                tensors.Add(new TensorAt(section, name, dtype, shape, at, bytes));
                at += (int)bytes;
            }
            return at;
        }
    }

    /// <summary>Whether every float32 weight in the model section is finite.</summary>
    public static bool ModelIsFinite(byte[] file) =>
        Layout(file).Tensors.Where(t => t is { Section: "model", DType: 6 })
            .All(t => AllFinite(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(file.AsSpan(t.DataAt, (int)t.Bytes))));

    static bool AllFinite(ReadOnlySpan<float> values)
    {
        foreach (var v in values)
            if (!float.IsFinite(v)) return false;
        return true;
    }
}
