using System.Buffers.Binary;
using System.Text.Json;
using static TorchSharp.torch;

namespace Seg.Models.Weights;

/// <summary>
/// Reads the safetensors format (Hugging Face): an 8-byte little-endian header size, a JSON header mapping each
/// name to <c>{dtype, shape, data_offsets}</c> (offsets relative to the end of the header), then raw little-endian
/// row-major data. Every entry is checked against the buffer before it is read.
/// </summary>
internal static class SafetensorsReader
{
    public static Dictionary<string, Tensor> Read(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 8) throw new InvalidDataException($"{path}: too short for a safetensors file.");
        ulong headerSize = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        if (headerSize > (ulong)(bytes.Length - 8)) throw new InvalidDataException($"{path}: safetensors header size {headerSize} exceeds the file.");
        int dataStart = 8 + (int)headerSize;

        JsonDocument doc;
        try { doc = JsonDocument.Parse(bytes.AsMemory(8, (int)headerSize)); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: safetensors header is not valid JSON ({e.Message}).", e); }

        var result = new Dictionary<string, Tensor>();
        using (doc)
        {
            try
            {
                foreach (var entry in doc.RootElement.EnumerateObject())
                {
                    if (entry.Name == "__metadata__") continue;
                    result[entry.Name] = ReadEntry(path, entry, bytes, dataStart);
                }
            }
            catch
            {
                foreach (var t in result.Values) t.Dispose();
                throw;
            }
        }
        return result;
    }

    static Tensor ReadEntry(string path, JsonProperty entry, byte[] bytes, int dataStart)
    {
        string key = entry.Name;
        try
        {
            var e = entry.Value;
            string code = e.GetProperty("dtype").GetString() ?? "";
            var dtype = DTypes.FromSafetensorsCode(code)
                ?? throw new InvalidDataException($"{path}: tensor '{key}' has unsupported dtype '{code}'.");
            long[] shape = e.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray();
            long[] offsets = e.GetProperty("data_offsets").EnumerateArray().Select(d => d.GetInt64()).ToArray();
            if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0] || dataStart + offsets[1] > bytes.Length)
                throw new InvalidDataException($"{path}: tensor '{key}' has data_offsets outside the file.");
            long expected = shape.Aggregate(1L, (a, b) => checked(a * b)) * DTypes.ElementSize(dtype);
            if (shape.Any(d => d < 0) || expected != offsets[1] - offsets[0])
                throw new InvalidDataException($"{path}: tensor '{key}' has shape [{string.Join(", ", shape)}] ({code}) but {offsets[1] - offsets[0]} bytes.");
            return DTypes.FromBytes(bytes.AsSpan(dataStart + (int)offsets[0], (int)(offsets[1] - offsets[0])), dtype, shape);
        }
        catch (Exception ex) when (ex is KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{path}: tensor '{key}' has a malformed header entry ({ex.Message}).", ex);
        }
    }
}
