using System.Security.Cryptography;
using System.Text;

namespace Seg.Onnx;

/// <summary>
/// Reads what Seg needs from an ONNX file's top-level <c>ModelProto</c> (onnx.proto3) itself, in one pass of the
/// protobuf wire format, before ONNX Runtime sees the file: its own <c>metadata_props</c> entries (ONNX Runtime's
/// managed accessor looks up every key by a linear native search, so a file with many entries took quadratic time),
/// and the SHA-256 of the serialised graph, for the integrity check (<see cref="OnnxModelMetadata.GraphSha256"/>).
/// Other fields are skipped by seeking; every length is checked against the file.
/// </summary>
internal static class OnnxModelFile
{
    /// <summary>The most <c>metadata_props</c> entries a file may have: Seg writes about a dozen.</summary>
    public const int MaxMetadataEntries = 1024;

    /// <summary>The longest key or value of an entry Seg reads (class names and palettes of thousands of classes fit).</summary>
    public const int MaxValueBytes = 1 << 20;

    // ModelProto field numbers (onnx.proto3).
    const int GraphField = 7, MetadataPropsField = 14;

    /// <summary>Seg's entries (the keys in <paramref name="keys"/>) and the graph's SHA-256 (lower-case hex; null
    /// without a graph field).</summary>
    /// <exception cref="InvalidDataException">Not a protobuf ModelProto, too many entries, an entry too long, or a
    /// Seg key given twice (names the file).</exception>
    public static (IReadOnlyDictionary<string, string> Props, string? GraphSha256) Read(string path, IReadOnlySet<string> keys)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16);
        var reader = new WireReader(stream, path);
        var props = new Dictionary<string, string>(StringComparer.Ordinal);
        string? graphSha256 = null;
        int entries = 0;
        while (stream.Position < stream.Length)
        {
            var (field, wireType) = reader.Tag();
            if (wireType != 2) { reader.Skip(wireType); continue; }
            long length = reader.Length();
            if (field == MetadataPropsField)
            {
                if (++entries > MaxMetadataEntries)
                    throw new InvalidDataException($"{path}: more than {MaxMetadataEntries} metadata_props entries; Seg writes about a dozen, and refuses files with more (ONNX Runtime's metadata accessor takes quadratic time in their number).");
                var (key, value) = Entry(reader, stream.Position + length, keys);
                if (key is not null && !props.TryAdd(key, value!))
                    throw new InvalidDataException($"{path}: metadata '{key}' is given twice.");
            }
            else if (field == GraphField)
            {
                if (graphSha256 is not null) throw new InvalidDataException($"{path}: the model has two graph fields.");
                graphSha256 = Convert.ToHexStringLower(reader.Hash(length));
            }
            else reader.Seek(length);
        }
        return (props, graphSha256);
    }

    // StringStringEntryProto: key = 1, value = 2. Only entries with a key of Seg's are materialised.
    static (string? Key, string? Value) Entry(WireReader reader, long end, IReadOnlySet<string> keys)
    {
        string? key = null, value = null;
        bool ours = false;
        byte[]? valueBytes = null;
        while (reader.Position < end)
        {
            var (field, wireType) = reader.Tag();
            if (wireType != 2 || field is not (1 or 2)) { reader.Skip(wireType); continue; }
            long length = reader.Length(end);
            if (field == 1 && length <= MaxValueBytes)
            {
                key = reader.Utf8(length);
                ours = keys.Contains(key);
            }
            else if (field == 2 && length <= MaxValueBytes) valueBytes = reader.Bytes(length);
            else
            {
                if (field == 2 || ours) throw reader.Corrupt($"a metadata entry of {length} bytes, beyond the {MaxValueBytes} Seg reads");
                reader.Seek(length);
                key = null; // a key too long to be Seg's
            }
        }
        if (reader.Position != end) throw reader.Corrupt("a metadata entry overruns its length");
        if (!ours) return (null, null);
        try { value = valueBytes is null ? "" : new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(valueBytes); }
        catch (DecoderFallbackException) { throw reader.Corrupt($"metadata '{key}' is not UTF-8"); }
        return (key, value);
    }

    /// <summary>The protobuf wire format (varints, tags, length-delimited fields) over a seekable stream, bounded by
    /// the file's length.</summary>
    sealed class WireReader(FileStream stream, string path)
    {
        public long Position => stream.Position;

        public (int Field, int WireType) Tag()
        {
            ulong tag = Varint();
            if (tag >> 3 is 0 or > int.MaxValue) throw Corrupt($"field number {tag >> 3}");
            return ((int)(tag >> 3), (int)(tag & 7));
        }

        public long Length(long end = long.MaxValue)
        {
            ulong length = Varint();
            long left = Math.Min(end, stream.Length) - stream.Position; // negative when the varint itself overran its field
            if (left < 0 || length > (ulong)left)
                throw Corrupt($"a field of {length} bytes at offset {stream.Position} runs past its end");
            return (long)length;
        }

        public void Skip(int wireType)
        {
            switch (wireType)
            {
                case 0: Varint(); break;
                case 1: Seek(8); break;
                case 2: Seek(Length()); break;
                case 5: Seek(4); break;
                default: throw Corrupt($"wire type {wireType} (groups are not used by ONNX)");
            }
        }

        public void Seek(long count)
        {
            if (count > stream.Length - stream.Position) throw Corrupt($"a field runs past the end of the {stream.Length}-byte file");
            stream.Position += count;
        }

        public byte[] Bytes(long count)
        {
            var buffer = new byte[count];
            stream.ReadExactly(buffer);
            return buffer;
        }

        public string Utf8(long count) => Encoding.UTF8.GetString(Bytes(count));

        public byte[] Hash(long count)
        {
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buffer = new byte[1 << 16];
            for (long left = count; left > 0;)
            {
                int n = stream.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
                if (n == 0) throw Corrupt("the graph runs past the end of the file");
                sha.AppendData(buffer, 0, n);
                left -= n;
            }
            return sha.GetHashAndReset();
        }

        ulong Varint()
        {
            ulong value = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                int b = stream.ReadByte();
                if (b < 0) throw Corrupt("the file ends inside a varint");
                value |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80) return value;
            }
            throw Corrupt("a varint longer than 10 bytes");
        }

        public InvalidDataException Corrupt(string what) => new($"{path}: not a valid ONNX model file: {what}.");
    }
}
