using System.Buffers.Binary;
using System.Text.Json;
using System.Text.Unicode;
using static TorchSharp.torch;

namespace Seg.Models.Weights;

/// <summary>
/// Reads the safetensors format (Hugging Face): an 8-byte little-endian header size, a JSON header mapping each
/// name to <c>{dtype, shape, data_offsets}</c> (offsets relative to the end of the header), then raw little-endian
/// row-major data. As the format's reference implementation does, the whole header is validated before any tensor
/// is made: a JSON object of entries with known dtypes, shapes whose byte size matches their offsets, and offsets
/// that tile the data exactly (no overlap, no hole, nothing past the end). Names may appear once.
/// </summary>
internal static class SafetensorsReader
{
    /// <summary>The reference implementation's header limit (100 MB).</summary>
    const long MaxHeaderBytes = 100_000_000;

    sealed record Entry(string Name, ScalarType Dtype, string Code, long[] Shape, ulong Begin, ulong End);

    public static Dictionary<string, Tensor> Read(string path)
    {
        using var file = File.OpenRead(path);
        long length = file.Length;
        if (length < 8) throw Bad(path, $"file is {length} bytes, too short for the 8-byte header length");
        Span<byte> head = stackalloc byte[8];
        file.ReadExactly(head);
        ulong headerSize = BinaryPrimitives.ReadUInt64LittleEndian(head);
        if (headerSize > (ulong)(length - 8))
            throw Bad(path, $"header length {headerSize} exceeds the file ({length} bytes)");
        if (headerSize > MaxHeaderBytes) throw Bad(path, $"header length {headerSize} exceeds the format's limit of {MaxHeaderBytes} bytes");
        var header = DTypes.ReadBytes(file, (int)headerSize, $"{path}: safetensors header");
        ulong dataLength = (ulong)(length - 8) - headerSize;

        var entries = ParseHeader(path, header, dataLength);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var e in entries)
            {
                file.Position = 8 + (long)headerSize + (long)e.Begin;
                result[e.Name] = DTypes.ReadTensor(file, (long)(e.End - e.Begin), e.Dtype, e.Shape, $"{path}: tensor '{e.Name}'");
            }
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
        return result;
    }

    static List<Entry> ParseHeader(string path, byte[] header, ulong dataLength)
    {
        if (!Utf8.IsValid(header)) throw Bad(path, "header is not valid UTF-8");
        JsonDocument doc;
        try { doc = JsonDocument.Parse(header); }
        catch (JsonException e) { throw Bad(path, $"header is not valid JSON ({e.Message})", e); }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw Bad(path, $"header's root is {Kind(root)}, not a JSON object of tensors");
            var entries = new List<Entry>();
            var names = new HashSet<string>(StringComparer.Ordinal);
            foreach (var p in root.EnumerateObject())
            {
                if (!names.Add(p.Name)) throw Bad(path, $"tensor '{p.Name}' is listed twice in the header");
                if (p.Name == "__metadata__")
                {
                    if (p.Value.ValueKind != JsonValueKind.Object) throw Bad(path, $"__metadata__ is {Kind(p.Value)}, not an object");
                    continue;
                }
                entries.Add(ParseEntry(path, p, dataLength));
            }
            CheckTiling(path, entries, dataLength);
            return entries;
        }
    }

    static Entry ParseEntry(string path, JsonProperty p, ulong dataLength)
    {
        string what = $"{path}: tensor '{p.Name}'";
        var e = p.Value;
        if (e.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{what} is {Kind(e)} in the header, not an object.");
        if (!e.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String)
            throw new InvalidDataException($"{what} has no string 'dtype'.");
        string code = dt.GetString()!;
        var dtype = DTypes.FromSafetensorsCode(code) ?? throw new InvalidDataException($"{what} has unsupported dtype '{code}'.");
        if (!e.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array)
            throw new InvalidDataException($"{what} has no 'shape' array.");
        if (sh.GetArrayLength() > DTypes.MaxDims)
            throw new InvalidDataException($"{what} declares {sh.GetArrayLength()} dimensions (at most {DTypes.MaxDims} are read).");
        var shape = new long[sh.GetArrayLength()];
        int i = 0;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out shape[i]))
                throw new InvalidDataException($"{what} has shape entry {d.GetRawText()}, not an integer that fits 64 bits.");
            i++;
        }
        long bytes = DTypes.ByteSize(what, shape, dtype);
        if (!e.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw new InvalidDataException($"{what} has no 'data_offsets' pair.");
        var o = off.EnumerateArray().ToArray();
        if (o.Any(x => x.ValueKind != JsonValueKind.Number) || !o[0].TryGetUInt64(out ulong begin) || !o[1].TryGetUInt64(out ulong end))
            throw new InvalidDataException($"{what} has data_offsets {off.GetRawText()}, not two non-negative 64-bit integers.");
        if (begin > end || end > dataLength)
            throw new InvalidDataException($"{what} has data_offsets [{begin}, {end}] outside the {dataLength} data bytes.");
        if (end - begin != (ulong)bytes)
            throw new InvalidDataException($"{what} has shape {DTypes.Shape(shape)} ({code}, {bytes} bytes) but data_offsets [{begin}, {end}] hold {end - begin} bytes.");
        return new Entry(p.Name, dtype, code, shape, begin, end);
    }

    /// <summary>The tensors, in offset order, must cover the data exactly once.</summary>
    static void CheckTiling(string path, List<Entry> entries, ulong dataLength)
    {
        ulong at = 0;
        Entry? previous = null;
        foreach (var e in entries.OrderBy(e => e.Begin).ThenBy(e => e.End))
        {
            if (e.Begin < at)
                throw Bad(path, $"tensors '{previous!.Name}' and '{e.Name}' overlap (data bytes [{e.Begin}, {Math.Min(at, e.End)}))");
            if (e.Begin > at) throw Bad(path, $"data bytes [{at}, {e.Begin}) belong to no tensor");
            at = e.End;
            previous = e;
        }
        if (at != dataLength) throw Bad(path, $"{dataLength - at} data bytes after the last tensor belong to no tensor");
    }

    static string Kind(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => e.ValueKind.ToString(),
    };

    static InvalidDataException Bad(string path, string what, Exception? inner = null) => new($"{path}: {what}.", inner);
}
