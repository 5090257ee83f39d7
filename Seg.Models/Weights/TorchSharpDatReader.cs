using static TorchSharp.torch;

namespace Seg.Models.Weights;

/// <summary>
/// Reads what TorchSharp's <c>Module.save</c> writes: an entry count, then per entry a name (BinaryWriter string)
/// and a tensor, which TorchSharp's own <c>TensorExtensionMethods.Load</c> decodes.
/// </summary>
internal static class TorchSharpDatReader
{
    public static Dictionary<string, Tensor> Read(string path)
    {
        using var stream = File.OpenRead(path);
        using var reader = new BinaryReader(stream);
        var result = new Dictionary<string, Tensor>();
        string key = "(header)";
        try
        {
            long count = reader.Read7BitEncodedInt64();
            if (count < 0 || count > stream.Length) throw new InvalidDataException($"{path}: implausible entry count {count}: not a TorchSharp state_dict file.");
            for (long i = 0; i < count; i++)
            {
                key = $"(entry {i})";
                key = reader.ReadString();
                result[key] = TorchSharp.TensorExtensionMethods.Load(reader);
            }
            if (stream.Position != stream.Length) throw new InvalidDataException($"{path}: {stream.Length - stream.Position} bytes after the last tensor: not a TorchSharp state_dict file.");
        }
        catch (Exception e) when (e is EndOfStreamException or ArgumentException or FormatException or NotImplementedException or OverflowException)
        {
            foreach (var t in result.Values) t.Dispose();
            throw new InvalidDataException($"{path}: cannot read tensor '{key}' as TorchSharp's format ({e.Message}).", e);
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
        return result;
    }
}
