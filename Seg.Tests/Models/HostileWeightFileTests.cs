using System.Text;
using Seg.Core;
using Seg.Core.Readers;
using Seg.Models;
using Seg.Tests.Fuzz;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Seg.Tests.Models;

/// <summary>
/// Regression tests for the weight files of issue 13: each hostile file is refused with an
/// <see cref="InvalidDataException"/> naming the file and what is wrong, in bounded memory.
/// </summary>
[Collection(ReaderLimitsCollection.Name)]
public sealed class HostileWeightFileTests : IDisposable
{
    readonly TempFiles files = new();

    public HostileWeightFileTests() => SegRuntime.Initialize();

    public void Dispose() => files.Dispose();

    InvalidDataException Refused(string name, byte[] bytes, params string[] expected)
    {
        var path = files.Write(name, bytes);
        var e = Assert.Throws<InvalidDataException>(() => StateDict.Read(path));
        Assert.Contains(path, e.Message);
        foreach (var s in expected) Assert.True(e.Message.Contains(s, StringComparison.Ordinal), $"'{s}' not in: {e.Message}");
        return e;
    }

    static byte[] St(string json, int dataBytes = 16) => SafetensorsFormat.File(json, new byte[dataBytes]);

    [Fact]
    public void SafetensorsOffsetsNear2To63AreRefusedNotWrappedIntoTheHeader()
    {
        // Before: begin + length overflowed the bounds check and the tensor was filled from the JSON header.
        Refused("a.safetensors", St("""{"w":{"dtype":"F32","shape":[2],"data_offsets":[9223372036854775800,9223372036854775808]}}"""),
            "tensor 'w'", "data_offsets [9223372036854775800, 9223372036854775808] outside the 16 data bytes");
    }

    [Theory]
    [InlineData("[]", "an array")]
    [InlineData("\"text\"", "a string")]
    [InlineData("42", "a number")]
    [InlineData("null", "null")]
    public void SafetensorsHeaderWhoseRootIsNotAnObjectIsRefused(string root, string kind) =>
        Refused("r.safetensors", St(root), $"header's root is {kind}, not a JSON object");

    [Fact]
    public void SafetensorsShapesThatOverflowAreRefusedBeforeLibtorch()
    {
        Refused("o.safetensors", St("""{"w":{"dtype":"F32","shape":[2147483648,2147483648,2147483648],"data_offsets":[0,16]}}"""),
            "tensor 'w' declares 9903520314283042199192993792 (2^93) elements");
        // 2^62 float32 elements are 2^64 bytes, which wraps to 0 in 64-bit arithmetic: it reached libtorch before.
        Refused("z.safetensors", St("""{"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}}""", 0),
            "tensor 'w' declares 4611686018427387904 (2^62) elements");
        Refused("n.safetensors", St("""{"w":{"dtype":"F32","shape":[-1,-4],"data_offsets":[0,16]}}"""), "negative dimension -1");
    }

    [Fact]
    public void SafetensorsHeaderLongerThanTheFileNamesBothLengths()
    {
        var bytes = SafetensorsFormat.File("{}", null, headerLength: 1UL << 40);
        Refused("h.safetensors", bytes, $"header length 1099511627776 exceeds the file ({bytes.Length} bytes)");
    }

    [Fact]
    public void SafetensorsTensorsMustTileTheDataExactly()
    {
        Refused("ov.safetensors", St("""{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"""),
            "tensors 'a' and 'b' overlap");
        Refused("hole.safetensors", St("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"""),
            "data bytes [4, 8) belong to no tensor");
    }

    [Fact]
    public void RepeatedTensorNamesAreRefusedInEveryFormat()
    {
        Refused("dup.safetensors", St("""{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"""),
            "tensor 'w' is listed twice");
        var pickle = Crafted(new PthPickleFormat(), "repeated-name");
        Refused("dup.pth", new PthPickleFormat().Encode(pickle), "tensor 'w' appears twice");
        Refused("dup.dat", Crafted(new DatFormat(), "repeated-name"), "tensor 'w' appears twice");
    }

    [Fact]
    public void ACheckpointWithARepeatedNameIsNotLoadedAsGood()
    {
        // small_seq.pth's pickle with the first key written twice: strict LoadInto used to report "7 loaded".
        var pth = ModelFixtures.Path("small_seq.pth");
        var entries = ZipLayout.Entries(File.ReadAllBytes(pth));
        var path = files.Write("dup-key.pth", ZipLayout.Build(entries.Select(e =>
            e.Name.EndsWith("data.pkl") ? (e.Name, Rename(e.Data, "1.running_mean", "1.running_var")) : e)));
        using var seq = Sequential(Conv2d(3, 4, 3), BatchNorm2d(4));
        var e = Assert.Throws<InvalidDataException>(() => StateDict.LoadInto(seq, path));
        Assert.Contains(path, e.Message);
        Assert.Contains("'1.running_var' appears twice", e.Message);
    }

    /// <summary>The pickle with one BINUNICODE string replaced by another (its 4-byte length fixed).</summary>
    static byte[] Rename(byte[] pkl, string from, string to)
    {
        var f = Encoding.ASCII.GetBytes(from);
        int at = pkl.AsSpan().IndexOf(f);
        Assert.True(at > 5 && pkl[at - 5] == (byte)'X' && BitConverter.ToInt32(pkl, at - 4) == f.Length, "key stored as BINUNICODE");
        return [.. pkl[..(at - 4)], .. BitConverter.GetBytes(to.Length), .. Encoding.ASCII.GetBytes(to), .. pkl[(at + f.Length)..]];
    }

    [Fact]
    public void PthEntriesMustMatchTheirCrc32()
    {
        var pth = File.ReadAllBytes(ModelFixtures.Path("tensors.pth"));
        Refused("crc-storage.pth", PthFormat.FlipInEntry(pth, "tensors/data/5", 3), "entry 'tensors/data/5' fails its CRC-32 check", "the file is corrupt");
        Refused("crc-pickle.pth", PthFormat.FlipInEntry(pth, "tensors/data.pkl", 40), "entry 'tensors/data.pkl' fails its CRC-32 check");
    }

    [Fact]
    public void PthZipBombIsRefusedBeforeInflating()
    {
        using var cap = new ReaderLimitsCollection.Cap(16 << 20);
        var entries = ZipLayout.Entries(File.ReadAllBytes(ModelFixtures.Path("tensors.pth")));
        var bomb = ZipLayout.Build(entries.Select(e => (e.Name, e.Data, e.Name.EndsWith("data.pkl") ? 64L << 20 : 0L)), deflate: true);
        var path = files.Write("bomb.pth", bomb);
        var before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<InvalidDataException>(() => StateDict.Read(path));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 4 << 20, "the bomb was inflated");
        Assert.Contains(path, e.Message);
        Assert.Contains("entry 'tensors/data.pkl' declares 67109530 bytes (64 MiB) from", e.Message);
        Assert.Contains("beyond the decompression limit (16777216 bytes (16 MiB) per file", e.Message);
    }

    [Theory]
    [InlineData("BINUNICODE-FFFFFFFF", "pickle opcode BINUNICODE at byte 2 declares 4294967295 bytes, 4 remain")]
    [InlineData("BINUNICODE-80000000", "pickle opcode BINUNICODE at byte 2 declares 2147483648 bytes, 4 remain")]
    [InlineData("BINUNICODE8-10000000000", "pickle opcode BINUNICODE8 at byte 2 declares 1099511627776 bytes, 4 remain")]
    [InlineData("BINUNICODE8-FFFFFFFFFFFFFFFF", "pickle opcode BINUNICODE8 at byte 2 declares 18446744073709551615 bytes, 4 remain")]
    [InlineData("BINSTRING-FFFFFFFF", "pickle opcode BINSTRING at byte 2 declares a negative length, -1")]
    [InlineData("BINSTRING-7FFFFFFF", "pickle opcode BINSTRING at byte 2 declares 2147483647 bytes, 4 remain")]
    [InlineData("LONG4-80000000", "pickle opcode LONG4 at byte 2 declares a negative length, -2147483648")]
    [InlineData("LONG4-7FFFFFFF", "pickle opcode LONG4 at byte 2 declares 2147483647 bytes, 4 remain")]
    public void PickleLengthsBeyondTheDataNameTheOpcodeAndTheBytesLeft(string crafted, string message)
    {
        var format = new PthPickleFormat();
        var e = Refused("len.pth", format.Encode(Crafted(format, crafted)), message);
        Assert.Contains("(tensors/data.pkl)", e.Message);
    }

    [Fact]
    public void DeepPickleNestingIsRefusedByADepthLimit()
    {
        var format = new PthPickleFormat();
        Refused("marks.pth", format.Encode(Crafted(format, "deep-marks")), "more than 100 MARKs open at once");
        Refused("tuples.pth", format.Encode(Crafted(format, "deep-tuples")), "objects nest more than 100 deep");
        Refused("lists.pth", format.Encode(Crafted(format, "deep-lists")), "objects nest more than 100 deep");
    }

    [Theory]
    [InlineData("os", "system")]
    [InlineData("builtins", "eval")]
    [InlineData("subprocess", "Popen")]
    [InlineData("torch", "load")]
    public void UnknownGlobalsAreStillRefusedAndNamed(string module, string name)
    {
        var format = new PthPickleFormat();
        Refused("g.pth", format.Encode(Crafted(format, $"GLOBAL-{module}.{name}")), $"refers to global '{module}.{name}'", "nothing in the file is executed");
        Refused("sg.pth", format.Encode(Crafted(format, $"STACK_GLOBAL-{module}.{name}")), $"refers to global '{module}.{name}'");
    }

    [Fact]
    public void PthViewsOutsideTheirStorageAreRefusedInCSharp()
    {
        var format = new PthPickleFormat();
        Refused("past.pth", format.Encode(Crafted(format, "past-storage")), "tensor 'w' of size [13], stride [1] and offset 0 reaches element 12 of a storage with 12 elements");
        Refused("ovf.pth", format.Encode(Crafted(format, "stride-overflow")), "tensor 'w'", "reaches element");
        Refused("neg.pth", format.Encode(Crafted(format, "size-negative")), "tensor 'w' has a negative size");
        Refused("numel.pth", format.Encode(Crafted(format, "storage-numel-lies")), "storage '5'", "declares 1099511627776 elements");
    }

    [Fact]
    public void TheIssues23ByteDatWithDtypeCode1000IsRefused()
    {
        var bytes = Crafted(new DatFormat(), "dtype-1000");
        Assert.Equal(23, bytes.Length);
        Refused("d.dat", bytes, "tensor 'w' has dtype code 1000, which is not a TorchSharp tensor dtype");
        Refused("d100.dat", Crafted(new DatFormat(), "dtype-100"), "dtype code 100");
        Refused("d127.dat", Crafted(new DatFormat(), "dtype-127"), "dtype code 127");
        Refused("dneg.dat", Crafted(new DatFormat(), "dtype-18446744073709551615"), "the dtype of tensor 'w'", "is negative or over 63 bits");
    }

    [Fact]
    public void DatShapesAndLengthsAreCheckedBeforeAllocating()
    {
        Refused("negdim.dat", Crafted(new DatFormat(), "dim-negative"), "dimension 0 of tensor 'w'", "negative or over 63 bits");
        Refused("ndim.dat", Crafted(new DatFormat(), "ndim-2^31"), "tensor 'w' declares 2147483648 dimensions");
        Refused("elements.dat", Crafted(new DatFormat(), "elements-2^62"), "tensor 'w' declares 4611686018427387904 (2^62) elements");
        Refused("name.dat", Crafted(new DatFormat(), "name-length-negative"), "the length of the name of entry 0", "negative or over 63 bits");
        Refused("name2.dat", Crafted(new DatFormat(), "name-length-2^31"), "the name of entry 0", "declares 2147483648 bytes");
        Refused("short.dat", Crafted(new DatFormat(), "data-short"), "tensor 'w' of shape [4] (Float32) needs 16 bytes, but only 15 are left");
        Refused("count.dat", Crafted(new DatFormat(), "count-2^62"), "declares 4611686018427387904 entries");
    }

    [Fact]
    public void DatWrittenByPythonFromTheFormatSpecReadsAsTorchSharpsOwnLoaderReadsIt()
    {
        // Oracle 1: the values make_reader_fixtures.py wrote. Oracle 2: TorchSharp's own Module.load of the same file.
        var path = FuzzFormats.FixturePath("readers", "small.dat");
        var t = StateDict.Read(path);
        Assert.Equal([0.5f, -1.0f, 2.25f, 3.0f, -0.125f, 7.5f], t["weight"].data<float>().ToArray());
        Assert.Equal([2L, 3L], t["weight"].shape);
        Assert.Equal([1.0 / 3.0, -2.5], t["running_mean"].data<double>().ToArray());
        Assert.Equal(17L, t["num_batches_tracked"].item<long>());
        Assert.Empty(t["num_batches_tracked"].shape);
        Assert.Equal([true, false, true], t["mask"].data<bool>().ToArray());
        Assert.Equal([1.5f, -0.25f], t["half"].to_type(ScalarType.Float32).data<float>().ToArray());

        using var holder = new SmallDatHolder();
        holder.load(path, strict: true);
        foreach (var (name, buffer) in holder.named_buffers()) Assert.True(buffer.Equals(t[name]), name);
        foreach (var v in t.Values) v.Dispose();
    }

    [Fact]
    public void ReadTorchSharpReadsAnEmbeddedSectionAndStopsAfterIt()
    {
        using var seq = Sequential(Conv2d(3, 4, 3), BatchNorm2d(4));
        var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true))
        {
            w.Write("header");
            seq.save(w);
            w.Write(12345);
        }
        ms.Position = 0;
        using var r = new BinaryReader(ms, Encoding.UTF8, leaveOpen: true);
        Assert.Equal("header", r.ReadString());
        var t = StateDict.ReadTorchSharp(ms, "ckpt");
        Assert.Equal(12345, r.ReadInt32()); // the stream is left right after the section
        foreach (var (k, v) in seq.state_dict()) Assert.True(v.Equals(t[k]), k);
        foreach (var v in t.Values) v.Dispose();

        ms.SetLength(ms.Length - 40); // drop the int, the last entry (32 bytes) and 4 bytes of 1.running_var
        ms.Position = 0;
        r.ReadString();
        var e = Assert.Throws<InvalidDataException>(() => StateDict.ReadTorchSharp(ms, "ckpt"));
        Assert.StartsWith("ckpt: tensor '1.running_var' of shape [4] (Float32) needs 16 bytes, but only 12 are left", e.Message);
    }

    sealed class SmallDatHolder : Module
    {
        public SmallDatHolder() : base(nameof(SmallDatHolder))
        {
            register_buffer("weight", zeros(2, 3));
            register_buffer("bias", zeros(2));
            register_buffer("running_mean", zeros(2, dtype: ScalarType.Float64));
            register_buffer("num_batches_tracked", zeros([], dtype: ScalarType.Int64));
            register_buffer("mask", zeros(3, dtype: ScalarType.Bool));
            register_buffer("half", zeros(2, dtype: ScalarType.Float16));
        }
    }

    static byte[] Crafted(IFuzzFormat format, string id) => format.Crafted().Single(c => c.Id == id).Bytes;
}

/// <summary>Tests that change <see cref="ReaderLimits.MaxDecompressedBytes"/> (process-wide) run alone.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ReaderLimitsCollection
{
    public const string Name = "ReaderLimits";

    /// <summary>Sets the cap for a test and restores it after.</summary>
    public sealed class Cap : IDisposable
    {
        readonly long previous = ReaderLimits.MaxDecompressedBytes;
        public Cap(long bytes) => ReaderLimits.MaxDecompressedBytes = bytes;
        public void Dispose() => ReaderLimits.MaxDecompressedBytes = previous;
    }
}

/// <summary>Files in a temporary folder, removed at dispose.</summary>
public sealed class TempFiles : IDisposable
{
    public string Dir { get; } = Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), "seghostile-" + Guid.NewGuid().ToString("N"))).FullName;

    public string Write(string name, byte[] bytes)
    {
        var path = Path.Combine(Dir, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    public void Dispose()
    {
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }
}
