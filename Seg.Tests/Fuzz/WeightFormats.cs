using System.Buffers.Binary;
using System.Text;
using System.Text.RegularExpressions;
using Seg.Models;

namespace Seg.Tests.Fuzz;

/// <summary><c>.safetensors</c> through <see cref="StateDict.Read"/>.</summary>
public sealed partial class SafetensorsFormat : IFuzzFormat
{
    public string Name => "safetensors";
    public string FileName => "case.safetensors";

    public IReadOnlyList<FuzzSeed> Seeds() =>
        [new("tensors", FuzzFormats.Fixture("models", "tensors.safetensors"), [new(0, 8, false, "header_size")])];

    public string Read(string path) => FuzzFormats.Digest(StateDict.Read(path));

    /// <summary>A safetensors file: the header's true length unless <paramref name="headerLength"/> says otherwise.</summary>
    public static byte[] File(string json, byte[]? data = null, ulong? headerLength = null)
    {
        var header = Encoding.UTF8.GetBytes(json);
        var result = new byte[8 + header.Length + (data?.Length ?? 0)];
        BinaryPrimitives.WriteUInt64LittleEndian(result, headerLength ?? (ulong)header.Length);
        header.CopyTo(result, 8);
        data?.CopyTo(result, 8 + header.Length);
        return result;
    }

    static FuzzCase Case(string id, string json, int dataBytes = 16, ulong? headerLength = null) =>
        new(id, File(json, new byte[dataBytes], headerLength));

    public IEnumerable<FuzzCase> Crafted()
    {
        // data_offsets near 2^63: begin + length overflows a signed check.
        yield return Case("offsets-near-2^63", """{"w":{"dtype":"F32","shape":[2],"data_offsets":[9223372036854775800,9223372036854775808]}}""");
        yield return Case("offsets-2^63-1", """{"w":{"dtype":"F32","shape":[2],"data_offsets":[9223372036854775807,9223372036854775815]}}""");
        yield return Case("offsets-2^64-8", """{"w":{"dtype":"U8","shape":[8],"data_offsets":[18446744073709551608,0]}}""");
        yield return Case("offsets-begin-after-end", """{"w":{"dtype":"U8","shape":[0],"data_offsets":[8,0]}}""");
        yield return Case("offsets-negative", """{"w":{"dtype":"U8","shape":[8],"data_offsets":[-8,0]}}""");
        yield return Case("offsets-three", """{"w":{"dtype":"U8","shape":[8],"data_offsets":[0,8,16]}}""");
        yield return Case("offsets-float", """{"w":{"dtype":"U8","shape":[8],"data_offsets":[0.5,8.5]}}""");
        foreach (var root in new[] { "[]", "[1,2]", "\"text\"", "42", "null", "true" })
            yield return Case($"root-{root.Trim('"')}", root);
        yield return Case("shape-overflow", """{"w":{"dtype":"F32","shape":[2147483648,2147483648,2147483648],"data_offsets":[0,16]}}""");
        yield return Case("shape-2^62-elements", """{"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,16]}}""");
        // 2^62 F32 elements are 2^64 bytes: wraps to 0 in 64-bit arithmetic.
        yield return Case("bytes-wrap-to-zero", """{"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}}""");
        yield return Case("bytes-wrap-to-16", """{"w":{"dtype":"F32","shape":[4611686018427387908],"data_offsets":[0,16]}}""");
        yield return Case("shape-negative", """{"w":{"dtype":"F32","shape":[-1,-4],"data_offsets":[0,16]}}""");
        yield return Case("shape-one-negative", """{"w":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}}""");
        yield return Case("shape-string", """{"w":{"dtype":"F32","shape":"4","data_offsets":[0,16]}}""");
        yield return Case("shape-huge-ndim", "{\"w\":{\"dtype\":\"U8\",\"shape\":[" + string.Join(",", Enumerable.Repeat("1", 100_000)) + "],\"data_offsets\":[0,1]}}");
        yield return Case("dtype-unknown", """{"w":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}""");
        yield return Case("dtype-number", """{"w":{"dtype":7,"shape":[4],"data_offsets":[0,16]}}""");
        yield return Case("entry-not-object", """{"w":[1,2,3]}""");
        yield return Case("entry-missing-offsets", """{"w":{"dtype":"F32","shape":[4]}}""");
        yield return Case("repeated-name", """{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}""");
        yield return Case("overlapping", """{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}""");
        yield return Case("hole", """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}""");
        yield return Case("past-the-end", """{"w":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}}""");
        yield return Case("metadata-not-object", """{"__metadata__":[1],"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""");
        yield return Case("deep-json", new string('[', 100_000) + new string(']', 100_000));
        yield return Case("deep-json-in-entry", "{\"w\":" + new string('[', 5000) + new string(']', 5000) + "}");
        yield return Case("header-2^40", "{}", headerLength: 1UL << 40);
        yield return Case("header-2^63", "{}", headerLength: 1UL << 63);
        yield return Case("header-2^64-1", "{}", headerLength: ulong.MaxValue);
        yield return Case("header-zero", "{}", headerLength: 0);
        yield return new FuzzCase("header-not-utf8", File("{\"w\xff\":{}}").Select((b, i) => i == 11 ? (byte)0xff : b).ToArray());
        yield return new FuzzCase("seven-bytes", [1, 0, 0, 0, 0, 0, 0]);
    }

    [GeneratedRegex("-?[0-9]+")]
    private static partial Regex Number();

    /// <summary>A number of the JSON header replaced by a boundary value (as text), the header length fixed up.</summary>
    public IEnumerable<FuzzCase> Structured(Random rng, int count)
    {
        var seed = FuzzFormats.Fixture("models", "tensors.safetensors");
        int headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(seed);
        var json = Encoding.UTF8.GetString(seed, 8, headerLength);
        var data = seed[(8 + headerLength)..];
        var numbers = Number().Matches(json).ToList();
        string[] values = ["0", "-1", "1", "3", "2147483647", "2147483648", "4294967296", "4611686018427387904",
            "9223372036854775807", "9223372036854775808", "18446744073709551615", "18446744073709551616", "1e400", "-0", "1.5",
            "99999999999999999999999999"];
        for (int i = 0; i < count && numbers.Count > 0; i++)
        {
            var m = numbers[rng.Next(numbers.Count)];
            var v = values[rng.Next(values.Length)];
            var edited = json[..m.Index] + v + json[(m.Index + m.Length)..];
            yield return new FuzzCase($"number@{m.Index}={v}", File(edited, data));
        }
    }
}

/// <summary><c>.pth</c> (PyTorch zip) files through <see cref="StateDict.Read"/>, mutated as raw bytes: the zip's
/// structures, its CRCs and, behind them, everything else.</summary>
public sealed class PthFormat : IFuzzFormat
{
    static readonly string[] Fixtures = ["tensors.pth", "checkpoint.pth", "small_seq.pth", "evil.pth"];

    public string Name => "pth";
    public string FileName => "case.pth";

    public IReadOnlyList<FuzzSeed> Seeds() => Fixtures.Select(f =>
    {
        var bytes = FuzzFormats.Fixture("models", f);
        return new FuzzSeed(f, bytes, ZipLayout.Fields(bytes), Readable: f != "evil.pth");
    }).ToList();

    public string Read(string path) => FuzzFormats.Digest(StateDict.Read(path));

    /// <summary>Rebuilt archives (CRCs right) whose one entry is edited: the checks behind the zip layer.</summary>
    public IEnumerable<FuzzCase> Structured(Random rng, int count)
    {
        var seeds = Fixtures.Take(3).Select(f => (f, ZipLayout.Entries(FuzzFormats.Fixture("models", f)))).ToList();
        for (int i = 0; i < count; i++)
        {
            var (name, entries) = seeds[rng.Next(seeds.Count)];
            int which = rng.Next(entries.Count);
            var data = (byte[])entries[which].Data.Clone();
            string what;
            switch (rng.Next(3))
            {
                case 0 when data.Length > 0:
                    int at = rng.Next(data.Length);
                    data[at] ^= (byte)(1 + rng.Next(255));
                    what = $"flip@{at}";
                    break;
                case 1:
                    int keep = rng.Next(data.Length + 1);
                    data = data[..keep];
                    what = $"truncate@{keep}";
                    break;
                default:
                    int extra = 1 + rng.Next(64);
                    data = [.. data, .. new byte[extra]];
                    what = $"extend+{extra}";
                    break;
            }
            var rebuilt = entries.Select((e, j) => j == which ? (e.Name, data) : e);
            yield return new FuzzCase($"{name}/{entries[which].Name}/{what}", ZipLayout.Build(rebuilt, deflate: rng.Next(4) == 0));
        }
    }

    public IEnumerable<FuzzCase> Crafted()
    {
        var entries = ZipLayout.Entries(FuzzFormats.Fixture("models", "tensors.pth"));
        byte[] Rebuilt(Func<(string Name, byte[] Data), IEnumerable<(string, byte[])>> map, bool deflate = false) =>
            ZipLayout.Build(entries.SelectMany(map), deflate);

        byte[] Bomb(string entry, long zeros, bool replace) => ZipLayout.Build(entries.Select(e =>
            e.Name.EndsWith(entry) ? (e.Name, replace ? [] : e.Data, zeros) : (e.Name, e.Data, 0L)), deflate: true);
        // A deflated storage of 64 MiB of zeros (about 64 KB compressed): more than its tensor needs, and a bomb.
        yield return new("bomb-storage", Bomb("data/0", 64 << 20, replace: true));
        // 300 MiB of zeros after the pickle: beyond the decompression limit, refused before inflating.
        yield return new("bomb-pickle", Bomb("data.pkl", 300 << 20, replace: false));
        // A deflated entry nobody refers to must not be read at all.
        yield return new("bomb-unreferenced", ZipLayout.Build(entries.Select(e => (e.Name, e.Data, 0L)).Append(("tensors/data/huge", [], 300L << 20)), deflate: true));
        yield return new("duplicate-entry", Rebuilt(e => e.Name.EndsWith("data/0") ? [e, (e.Name, new byte[e.Data.Length])] : [e]));
        yield return new("duplicate-pickle", Rebuilt(e => e.Name.EndsWith("data.pkl") ? [e, e] : [e]));
        yield return new("storage-missing", Rebuilt(e => e.Name.EndsWith("data/0") ? [] : [e]));
        yield return new("storage-short", Rebuilt(e => e.Name.EndsWith("data/5") ? [(e.Name, e.Data[..8])] : [e]));
        yield return new("storage-odd-size", Rebuilt(e => e.Name.EndsWith("data/0") ? [(e.Name, e.Data[..23])] : [e]));
        yield return new("big-endian", Rebuilt(e => e.Name.EndsWith("version") ? [e, ("tensors/byteorder", "big"u8.ToArray())] : [e]));
        yield return new("no-pickle", Rebuilt(e => e.Name.EndsWith("data.pkl") ? [] : [e]));
        yield return new("empty-zip", ZipLayout.Build([]));
        yield return new("crc-flip-in-storage", FlipInEntry(FuzzFormats.Fixture("models", "tensors.pth"), "tensors/data/5", 3));
        yield return new("crc-flip-in-pickle", FlipInEntry(FuzzFormats.Fixture("models", "tensors.pth"), "tensors/data.pkl", 40));
    }

    /// <summary>The archive with one byte inside an entry's data changed and the CRC left as it was.</summary>
    public static byte[] FlipInEntry(byte[] zip, string entryName, int offsetInEntry)
    {
        var copy = (byte[])zip.Clone();
        var name = Encoding.ASCII.GetBytes(entryName);
        for (int i = 0; i + 30 <= copy.Length; i++)
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(copy.AsSpan(i)) != 0x04034b50) continue;
            int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(copy.AsSpan(i + 26));
            int extraLength = BinaryPrimitives.ReadUInt16LittleEndian(copy.AsSpan(i + 28));
            if (!copy.AsSpan(i + 30, nameLength).SequenceEqual(name)) continue;
            copy[i + 30 + nameLength + extraLength + offsetInEntry] ^= 0x01;
            return copy;
        }
        throw new ArgumentException($"no entry {entryName}");
    }
}

/// <summary>
/// The pickle inside a <c>.pth</c>: mutated as bytes, then zipped with the storages of tensors.pth and a correct
/// CRC (<see cref="Encode"/>), so that the restricted unpickler and the tensor checks are what is fuzzed.
/// </summary>
public sealed class PthPickleFormat : IFuzzFormat
{
    public string Name => "pth-pickle";
    public string FileName => "case.pth";

    static List<(string Name, byte[] Data)> Base() => ZipLayout.Entries(FuzzFormats.Fixture("models", "tensors.pth"));

    public IReadOnlyList<FuzzSeed> Seeds()
    {
        var pickle = Base().Single(e => e.Name.EndsWith("data.pkl")).Data;
        return [new("tensors.pkl", pickle, PickleBytes.Fields(pickle))];
    }

    public byte[] Encode(byte[] mutated) =>
        ZipLayout.Build(Base().Select(e => e.Name.EndsWith("data.pkl") ? (e.Name, mutated) : e));

    public string Read(string path) => FuzzFormats.Digest(StateDict.Read(path));

    static PickleBytes.Writer P() => new PickleBytes.Writer().Proto();

    /// <summary>A dict {name: tensor over storage '5' (12 floats)} for each name given.</summary>
    static byte[] Dict(params (string Name, long Offset, long[] Size, long[] Stride)[] tensors)
    {
        var w = P().Op('}').Mark();
        foreach (var t in tensors) w.Str(t.Name).Tensor("5", 12, t.Offset, t.Size, t.Stride);
        return w.Op('u').Stop().ToArray();
    }

    public IEnumerable<FuzzCase> Crafted()
    {
        // Length operands beyond the data (2^31, 2^32, 2^40, 2^63 and the like).
        foreach (var n in new uint[] { 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF })
        {
            yield return new($"BINUNICODE-{n:X}", P().Op('X').U32(n).Raw("abc").Stop().ToArray());
            yield return new($"BINSTRING-{n:X}", P().Op('T').U32(n).Raw("abc").Stop().ToArray());
            yield return new($"BINBYTES-{n:X}", P().Op('B').U32(n).Raw("abc").Stop().ToArray());
            yield return new($"LONG4-{n:X}", P().Op(0x8b).U32(n).Raw("abc").Stop().ToArray());
        }
        foreach (var n in new ulong[] { 1UL << 32, 1UL << 40, 1UL << 63, ulong.MaxValue })
        {
            yield return new($"BINUNICODE8-{n:X}", P().Op(0x8d).U64(n).Raw("abc").Stop().ToArray());
            yield return new($"BINBYTES8-{n:X}", P().Op(0x8e).U64(n).Raw("abc").Stop().ToArray());
        }
        yield return new("FRAME-2^63", P().Op(0x95).U64(1UL << 63).Op('N').Stop().ToArray());
        yield return new("LONG4-8-bytes", P().Op(0x8b).U32(8).U64(ulong.MaxValue).Stop().ToArray());
        yield return new("LONG1-255", P().Op(0x8a).Byte(255).Raw(new byte[255]).Stop().ToArray());

        // Code-running globals and opcodes: refused and named, never resolved.
        foreach (var (module, name) in new[] { ("os", "system"), ("posix", "system"), ("builtins", "eval"), ("builtins", "exec"),
                     ("subprocess", "Popen"), ("torch", "load"), ("__builtin__", "getattr"), ("torch._utils", "_rebuild_qtensor"),
                     ("torch", "Tensor"), ("collections", "defaultdict"), ("numpy.core.multiarray", "_reconstruct") })
        {
            yield return new($"GLOBAL-{module}.{name}", P().Global(module, name).Str("echo pwned").Op(0x85).Op('R').Stop().ToArray());
            yield return new($"STACK_GLOBAL-{module}.{name}", P().Str(module).Str(name).Op(0x93).Str("x").Op(0x85).Op('R').Stop().ToArray());
        }
        yield return new("INST", P().Mark().Str("echo").Raw("ios\nsystem\n").Stop().ToArray());
        yield return new("OBJ", P().Mark().Global("os", "system").Str("echo").Op('o').Stop().ToArray());
        yield return new("NEWOBJ", P().Global("collections", "OrderedDict").Op(')').Op(0x81).Stop().ToArray());
        yield return new("EXT1", P().Op(0x82).Byte(1).Stop().ToArray());
        yield return new("PERSID-text", P().Raw("Pstorage\n").Stop().ToArray());
        yield return new("REDUCE-on-string", P().Str("os.system").Str("x").Op(0x85).Op('R').Stop().ToArray());
        yield return new("BUILD-on-tensor", P().Op('}').Str("w").Tensor("5", 12, 0, [12], [1]).Op('}').Op('b').Op('s').Stop().ToArray());

        // Nesting and structure.
        yield return new("deep-marks", P().Raw(new string('(', 200_000)).Stop().ToArray());
        yield return new("deep-lists", [.. P().ToArray(), .. Enumerable.Repeat((byte)']', 100_000), .. Enumerable.Repeat((byte)'a', 99_999), (byte)'.']);
        yield return new("deep-tuples", [.. P().ToArray(), .. Enumerable.Repeat((byte)')', 1), .. Enumerable.Repeat((byte)0x85, 200_000), (byte)'.']);
        yield return new("self-containing-list", P().Op(']').Op('q').Byte(0).Op('h').Byte(0).Op('a').Stop().ToArray());
        yield return new("self-containing-dict", P().Op('}').Op('q').Byte(0).Str("k").Op('h').Byte(0).Op('s').Stop().ToArray());
        yield return new("memo-undefined", P().Op('h').Byte(9).Stop().ToArray());
        yield return new("memo-2^32-1", P().Op('N').Op('r').U32(uint.MaxValue).Op('j').U32(uint.MaxValue).Stop().ToArray());
        yield return new("stack-underflow", P().Op('s').Stop().ToArray());
        yield return new("no-stop", P().Op('N').ToArray());
        yield return new("empty", []);
        yield return new("stop-on-empty-stack", P().Stop().ToArray());
        yield return new("many-memo-puts", [.. P().Op('N').ToArray(), .. Enumerable.Range(0, 100_000).SelectMany(_ => new byte[] { 0x94 }), (byte)'.']);

        // Tensor metadata the storage cannot back, or that overflows.
        yield return new("tensor-fine", Dict(("w", 0, [3, 4], [4, 1])));
        yield return new("repeated-name", Dict(("w", 0, [3, 4], [4, 1]), ("w", 0, [12], [1])));
        yield return new("size-overflow", Dict(("w", 0, [1L << 31, 1L << 31, 1L << 31], [1, 1, 1])));
        yield return new("size-2^62", Dict(("w", 0, [1L << 62], [1])));
        yield return new("stride-overflow", Dict(("w", 0, [2, 2], [long.MaxValue, 1])));
        yield return new("offset-huge", Dict(("w", long.MaxValue - 2, [2], [1])));
        yield return new("offset-negative", Dict(("w", -4, [2], [1])));
        yield return new("size-negative", Dict(("w", 0, [-3, 4], [4, 1])));
        yield return new("stride-negative", Dict(("w", 11, [12], [-1])));
        yield return new("past-storage", Dict(("w", 0, [13], [1])));
        yield return new("size-stride-mismatch", Dict(("w", 0, [3, 4], [1])));
        yield return new("ndim-100", Dict(("w", 0, Enumerable.Repeat(1L, 100).ToArray(), Enumerable.Repeat(1L, 100).ToArray())));
        yield return new("empty-tensor-huge-offset", Dict(("w", 1L << 60, [0], [1])));
        yield return new("storage-numel-lies", P().Op('}').Str("w").Tensor("5", 1L << 40, 0, [12], [1]).Op('s').Stop().ToArray());
        yield return new("storage-key-missing", P().Op('}').Str("w").Tensor("77", 12, 0, [12], [1]).Op('s').Stop().ToArray());
        yield return new("storage-key-path", P().Op('}').Str("w").Tensor("../../etc/passwd", 12, 0, [12], [1]).Op('s').Stop().ToArray());
        yield return new("storage-type-mismatch", P().Op('}').Str("w").Tensor("5", 12, 0, [6], [1], "DoubleStorage").Op('s').Stop().ToArray());
        yield return new("storage-type-unknown", P().Op('}').Str("w").Tensor("5", 12, 0, [12], [1], "QInt8Storage").Op('s').Stop().ToArray());
        yield return new("non-string-key", P().Op('}').Int(3).Tensor("5", 12, 0, [12], [1]).Op('s').Stop().ToArray());
    }

    /// <summary>Opcode-level edits of the seed pickle: an operand replaced, an opcode swapped, or one dropped.</summary>
    public IEnumerable<FuzzCase> Structured(Random rng, int count)
    {
        var seed = Seeds()[0];
        byte[] opcodes = "().}])NJKMXqhrjtasuceQRb"u8.ToArray().Concat(new byte[] { 0x80, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8c, 0x93, 0x94, 0x95 }).ToArray();
        for (int i = 0; i < count; i++)
        {
            var field = seed.LengthFields[rng.Next(seed.LengthFields.Count)];
            var bytes = (byte[])seed.Bytes.Clone();
            switch (rng.Next(3))
            {
                case 0:
                    ulong v = (ulong)rng.NextInt64() >> rng.Next(64);
                    yield return new($"{field.What}@{field.Offset}={v}", Mutator.WriteField(bytes, field, field.Width == 8 ? v : v & ((1UL << (8 * field.Width)) - 1)) ?? bytes);
                    break;
                case 1:
                    bytes[field.Offset - 1] = opcodes[rng.Next(opcodes.Length)];
                    yield return new($"opcode@{field.Offset - 1}={bytes[field.Offset - 1]:X2}", bytes);
                    break;
                default:
                    yield return new($"drop@{field.Offset - 1}", [.. bytes.AsSpan(0, field.Offset - 1), .. bytes.AsSpan(field.Offset)]);
                    break;
            }
        }
    }
}
