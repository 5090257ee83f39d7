using System.Text;
using static TorchSharp.torch;

namespace Seg.Models.Weights;

/// <summary>
/// Reads what TorchSharp's <c>Module.save</c> writes: an entry count, then per entry a name (BinaryWriter string)
/// and a tensor (dtype code, ndim, dims, all unsigned LEB128, then the raw little-endian bytes). TorchSharp's own
/// loader hands the dtype code and shape to libtorch unchecked, so this reads the format itself and checks every
/// number against the bytes left in the file before a tensor is made.
/// </summary>
internal static class TorchSharpDatReader
{
    public static Dictionary<string, Tensor> Read(string path)
    {
        using var stream = File.OpenRead(path);
        var result = ReadSection(stream, path, stream.Length);
        if (stream.Position != stream.Length)
        {
            long extra = stream.Length - stream.Position;
            foreach (var t in result.Values) t.Dispose();
            throw new InvalidDataException($"{path}: {extra} bytes after the last tensor: not a TorchSharp state_dict file.");
        }
        return result;
    }

    /// <summary>
    /// Reads one state-dict section from <paramref name="stream"/>'s position, ending no later than byte
    /// <paramref name="end"/>; the stream is left after the section.
    /// </summary>
    public static Dictionary<string, Tensor> ReadSection(Stream stream, string path, long end)
    {
        var r = new Cursor(stream, path, end);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            long count = r.Varint("the entry count");
            // Each entry takes at least 3 bytes (name length, dtype, ndim).
            if (count > r.Left / 3)
                throw r.Fail($"declares {count} entries but only {r.Left} bytes follow: not a TorchSharp state_dict file");
            for (long i = 0; i < count; i++)
            {
                string name = r.String($"the name of entry {i}");
                string what = $"{path}: tensor '{name}'";
                if (result.ContainsKey(name)) throw new InvalidDataException($"{what} appears twice in the file.");
                long code = r.Varint($"the dtype of tensor '{name}'");
                var dtype = DTypes.FromTorchSharpCode(code)
                    ?? throw new InvalidDataException($"{what} has dtype code {code}, which is not a TorchSharp tensor dtype.");
                long ndim = r.Varint($"the rank of tensor '{name}'");
                if (ndim > DTypes.MaxDims) throw new InvalidDataException($"{what} declares {ndim} dimensions (at most {DTypes.MaxDims} are read).");
                var shape = new long[ndim];
                for (int d = 0; d < ndim; d++) shape[d] = r.Varint($"dimension {d} of tensor '{name}'");
                long bytes = DTypes.ByteSize(what, shape, dtype);
                if (bytes > r.Left)
                    throw new InvalidDataException($"{what} of shape {DTypes.Shape(shape)} ({dtype}) needs {bytes} bytes, but only {r.Left} are left in the file.");
                result[name] = DTypes.ReadTensor(stream, bytes, dtype, shape, what);
            }
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
        return result;
    }

    /// <summary>Reads LEB128 numbers and length-prefixed strings, failing with the file and offset named.</summary>
    sealed class Cursor(Stream stream, string path, long end)
    {
        static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

        public long Left => end - stream.Position;

        public InvalidDataException Fail(string what) => new($"{path}: {what} (at byte {stream.Position}).");

        /// <summary>A non-negative unsigned LEB128 number of at most 63 bits (what BinaryWriter and TorchSharp write).</summary>
        public long Varint(string what)
        {
            long start = stream.Position;
            ulong value = 0;
            for (int shift = 0; ; shift += 7)
            {
                if (stream.Position >= end) throw new InvalidDataException($"{path}: file ends inside {what} (at byte {start}).");
                int b = stream.ReadByte();
                if (b < 0) throw new InvalidDataException($"{path}: file ends inside {what} (at byte {start}).");
                if (shift == 63 && b > 0) // a tenth byte may hold only bit 63, which makes the value negative
                    throw new InvalidDataException($"{path}: {what} at byte {start} is negative or over 63 bits.");
                value |= (ulong)(b & 0x7F) << shift;
                if ((b & 0x80) == 0) break;
            }
            return (long)value;
        }

        public string String(string what)
        {
            long start = stream.Position;
            long length = Varint($"the length of {what}");
            if (length > int.MaxValue || length > Left)
                throw new InvalidDataException($"{path}: {what} at byte {start} declares {length} bytes, {Left} remain.");
            var bytes = DTypes.ReadBytes(stream, (int)length, $"{path}: {what}");
            try { return StrictUtf8.GetString(bytes); }
            catch (DecoderFallbackException) { throw new InvalidDataException($"{path}: {what} at byte {start} is not valid UTF-8."); }
        }
    }
}
