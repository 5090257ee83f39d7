using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Seg.Core;
using Seg.Tests.Fuzz;
using Seg.Train.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Tests.Train;

/// <summary>
/// The checkpoint reader against damaged and hostile files (issue 13): every one fails with an
/// <see cref="InvalidDataException"/> naming the file, in C#, before libtorch sees a byte of it; and a refused
/// file leaves the model and optimizer as they were.
/// </summary>
[Collection("Trainer")]
public class CheckpointIntegrityTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("seg-ckpt-int-").FullName;

    public CheckpointIntegrityTests() => SegRuntime.Initialize();

    public void Dispose() => Directory.Delete(dir, recursive: true);

    static nn.Module<Tensor, Tensor> Net() => CheckpointFixtures.Net();

    static CheckpointState State() => CheckpointFixtures.Make("sgd.ckpt").State;

    // A checkpoint as the fixtures' recipe writes it: SGD with momentum buffers, loss state, a full header.
    (string Path, byte[] Bytes) Saved(string name = "last.ckpt")
    {
        var (model, opt, loss, state) = CheckpointFixtures.Make("sgd.ckpt");
        var path = Path.Combine(dir, name);
        CheckpointFile.Save(path, state, model, opt, loss);
        return (path, File.ReadAllBytes(path));
    }

    string Write(byte[] bytes, string name = "hostile.ckpt")
    {
        var path = Path.Combine(dir, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    // Load with a fresh model and optimizer, as --resume does.
    static InvalidDataException Refused(string path)
    {
        var model = Net();
        var e = Assert.Throws<InvalidDataException>(() => CheckpointFile.Load(path, model, optim.SGD(model.parameters(), 0.1, momentum: 0.9)));
        Assert.StartsWith(path, e.Message);
        return e;
    }

    [Fact]
    public void TheTrailerIsTheSha256OfEverythingBeforeIt()
    {
        var (_, bytes) = Saved();
        Assert.Equal(CheckpointBytes.Magic, bytes[..8]);
        Assert.Equal(SHA256.HashData(bytes.AsSpan(0, bytes.Length - 32)), bytes[^32..]);
    }

    [Fact]
    public void EveryFlippedByteIsCaught()
    {
        var (_, bytes) = Saved();
        for (var i = 0; i < bytes.Length; i += Math.Max(1, bytes.Length / 400))
        {
            var copy = (byte[])bytes.Clone();
            copy[i] ^= 0x40;
            var e = Refused(Write(copy));
            Assert.True(e.Message.Contains("SHA-256") || e.Message.Contains("not a Seg checkpoint"), $"byte {i}: {e.Message}");
        }
    }

    [Fact]
    public void EveryTruncationIsCaught()
    {
        var (_, bytes) = Saved();
        for (var n = 0; n < bytes.Length; n += n < 64 ? 1 : 37)
            Refused(Write(bytes[..n]));
    }

    [Fact]
    public void FormatOneCheckpointsAreRefusedWithTheReason()
    {
        var e = Refused(Write([0x08, .. "SEGCKPT1"u8, 0x02, .. "{}"u8]));
        Assert.Contains("checkpoint format 1", e.Message);
    }

    [Fact]
    public void EmptyObjectHeaderIsInvalidDataNotANullReference()
    {
        var (_, bytes) = Saved();
        var e = Refused(Write(CheckpointBytes.WithHeader(bytes, "{}")));
        Assert.Contains("header is not valid", e.Message);
    }

    [Theory]
    [InlineData("null")]
    [InlineData("[]")]
    [InlineData("\"x\"")]
    [InlineData("{\"Iteration\": 1, \"Iteration\": 2}")]
    public void HeadersThatAreNotTheRecordAreRefused(string json)
    {
        var (_, bytes) = Saved();
        Refused(Write(CheckpointBytes.WithHeader(bytes, json)));
    }

    static string EditHeader(byte[] bytes, Action<JsonObject> edit)
    {
        var header = CheckpointBytes.Header(bytes);
        edit(header);
        return header.ToJsonString();
    }

    [Theory]
    [InlineData(2)]
    [InlineData(0)]
    [InlineData(5055)]
    [InlineData(5057)]
    public void RngStateOfTheWrongSizeIsRefusedBeforeLibtorch(int size)
    {
        var (_, bytes) = Saved();
        var json = EditHeader(bytes, h => h["RngState"] = Convert.ToBase64String(new byte[size]));
        var e = Refused(Write(CheckpointBytes.WithHeader(bytes, json)));
        Assert.Contains($"RNG state is {size} bytes", e.Message);
    }

    [Theory]
    [InlineData("ClassNames", "[]")]
    [InlineData("ClassNames", "[null, \"fg\"]")]
    [InlineData("Palette", "[[0, 0, 0]]")]
    [InlineData("Palette", "[[0, 0], [1, 2, 3], [4, 5, 6]]")]
    [InlineData("Palette", "[[0, 0, 0], [256, 0, 0], [0, 0, 0]]")]
    [InlineData("Iteration", "-1")]
    [InlineData("ConfigYaml", "null")]
    [InlineData("Overrides", "[null]")]
    public void ImplausibleHeaderFieldsAreRefused(string field, string value)
    {
        var (_, bytes) = Saved();
        var json = EditHeader(bytes, h => h[field] = JsonNode.Parse(value));
        Refused(Write(CheckpointBytes.WithHeader(bytes, json)));
    }

    [Fact]
    public void AHeaderAskingForMoreClassesThanAnyDatasetHasIsRefused()
    {
        // predict would build a model with one output per class before reading a single weight.
        var (_, bytes) = Saved();
        var json = EditHeader(bytes, h => h["ClassNames"] = new JsonArray(Enumerable.Range(0, 65537).Select(_ => (JsonNode?)"c").ToArray()));
        Assert.Contains("it names 65537 classes; 1 to 65536 are allowed", Refused(Write(CheckpointBytes.WithHeader(bytes, json))).Message);
    }

    [Fact]
    public void RepeatedTensorNameIsRefused()
    {
        var (_, bytes) = Saved();
        var copy = (byte[])bytes.Clone();
        // The model table holds 0.weight, 0.bias, 2.weight, 2.bias: make the last one a second "0.bias".
        var at = CheckpointBytes.Find(copy, "2.bias"u8.ToArray());
        copy[at] = (byte)'0';
        var e = Refused(Write(CheckpointBytes.Rehash(copy)));
        Assert.Contains("holds tensor '0.bias' twice", e.Message);
    }

    [Fact]
    public void SevenBytesDuplicatedAnywhereInTheOptimizerSectionAreRefused()
    {
        var (_, bytes) = Saved();
        var start = CheckpointBytes.Find(bytes, "{\"Type\":\"SGD\""u8.ToArray()) - 4;
        for (var at = start; at < bytes.Length - 32 - 7; at++)
        {
            byte[] copy = [.. bytes[..(at + 7)], .. bytes[at..]];
            Refused(Write(CheckpointBytes.Rehash(copy)));
        }
    }

    const string GoodHeader = """{"Iteration":0,"BestMeanIoU":-1,"BestIteration":0,"ConfigYaml":"","Overrides":[],"ClassNames":["a"],"Palette":[[0,0,0]],"RngState":"RNG"}""";

    static string Header() => GoodHeader.Replace("RNG", Convert.ToBase64String(CheckpointFile.CaptureRng()));

    [Theory]
    [InlineData("count 2^32-1", 0xFFFFFFFFu, 0, 0L, 0L, "declares 4294967295 tensors")]
    [InlineData("dtype 100", 1u, 100, 1L, 0L, "dtype code 100")]
    [InlineData("dtype 255 (-1)", 1u, 255, 1L, 0L, "dtype code 255")]
    [InlineData("negative size", 1u, 6, -1L, 0L, "size -1")]
    [InlineData("2^62 elements", 1u, 6, 1L << 62, 0L, "more elements than fit")]
    [InlineData("2^31 x 2^31 elements", 1u, 6, 1L << 31, 1L << 31, "more elements than fit")]
    [InlineData("bytes beyond the file", 1u, 6, 1000L, 0L, "more elements than fit")]
    public void CraftedTensorTablesAreRefused(string what, uint count, int dtype, long size0, long size1, string expected)
    {
        _ = what;
        long[] shape = size1 == 0 ? [size0] : [size0, size1];
        var path = Write(CheckpointBytes.File(Header(), count, CheckpointBytes.Record("w", (byte)dtype, shape, new byte[8])));
        var e = Assert.Throws<InvalidDataException>(() => CheckpointFile.ReadState(path));
        Assert.StartsWith(path, e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void RankAndNameLengthsAreBounded()
    {
        var rank = Write(CheckpointBytes.File(Header(), 1, CheckpointBytes.Record("w", 6, new long[200], [])));
        Assert.Contains("200 dimensions", Assert.Throws<InvalidDataException>(() => CheckpointFile.ReadState(rank)).Message);
        var noName = Write(CheckpointBytes.File(Header(), 1, [0, 0, 6, 0]));
        Assert.Contains("a name of 0 bytes", Assert.Throws<InvalidDataException>(() => CheckpointFile.ReadState(noName)).Message);
        var longName = Write(CheckpointBytes.File(Header(), 1, [.. CheckpointBytes.U16(60000), 6, 0]));
        Assert.Contains("a name of 60000 bytes", Assert.Throws<InvalidDataException>(() => CheckpointFile.ReadState(longName)).Message);
        var headerLength = Write(CheckpointBytes.Seal([.. CheckpointBytes.Magic, .. CheckpointBytes.U32(uint.MaxValue), .. new byte[16]]));
        Assert.Contains("declares 4294967295 bytes", Assert.Throws<InvalidDataException>(() => CheckpointFile.ReadState(headerLength)).Message);
    }

    [Fact]
    public void AWellFormedForeignTableDoesNotFitTheModel()
    {
        var path = Write(CheckpointBytes.File(Header(), 1, CheckpointBytes.Record("w", 6, [2], new byte[8])));
        Assert.Equal(0, CheckpointFile.ReadState(path).Iteration);
        var e = Assert.Throws<InvalidDataException>(() => CheckpointFile.Load(path, Net()));
        Assert.Contains("tensor 'w' is not in it", e.Message);
    }

    [Fact]
    public void OptimizerStateOfAnotherTypeOrGroupingIsRefused()
    {
        var (path, _) = Saved();
        var same = Net();
        var adam = optim.AdamW(same.parameters());
        Assert.Contains("holds SGD optimizer state; this run's optimizer is AdamW",
            Assert.Throws<InvalidDataException>(() => CheckpointFile.Load(path, same, adam)).Message);
        var grouped = Net();
        var two = optim.SGD([new TorchSharp.Modules.SGD.ParamGroup(grouped.parameters().Take(2)), new TorchSharp.Modules.SGD.ParamGroup(grouped.parameters().Skip(2))], 0.1, momentum: 0.9);
        Assert.Contains("parameter group(s); this optimizer has 2", Assert.Throws<InvalidDataException>(() => CheckpointFile.Load(path, grouped, two)).Message);
    }

    [Fact]
    public void ARefusedFileLeavesModelAndOptimizerUntouched()
    {
        var (_, bytes) = Saved();
        // Intact model section and a well-formed optimizer section naming a parameter this optimizer does not have.
        var copy = (byte[])bytes.Clone();
        copy[CheckpointBytes.Find(copy, "state.0.momentum_buffer"u8.ToArray()) + "state.".Length] = (byte)'9';
        var path = Write(CheckpointBytes.Rehash(copy));
        Assert.Equal(2, CheckpointFile.ReadState(path).Iteration);   // the file itself is sound

        manual_seed(99);
        var model = Net();
        var before = model.parameters().Select(p => p.detach().clone()).ToList();
        var e = Assert.Throws<InvalidDataException>(() => CheckpointFile.Load(path, model, optim.SGD(model.parameters(), 0.1, momentum: 0.9)));
        Assert.Contains("state.9.momentum_buffer", e.Message);
        foreach (var (p, b) in model.parameters().Zip(before)) Assert.True(p.Equals(b), "a refused checkpoint changed the model");
    }

    [Fact]
    public void RestoreRngChecksTheStateAgainstLibtorchsLayout()
    {
        // The layout CpuRngState relies on, read from live states: offset 0 seed, 8 left, 12 seeded, 16 next.
        manual_seed(42);
        var fresh = CheckpointFile.CaptureRng();
        Assert.Equal(5056, fresh.Length);
        Assert.Equal(42UL, BinaryPrimitives.ReadUInt64LittleEndian(fresh));
        Assert.Equal(1, BinaryPrimitives.ReadInt32LittleEndian(fresh.AsSpan(8)));
        Assert.Equal(1, BinaryPrimitives.ReadInt32LittleEndian(fresh.AsSpan(12)));
        Assert.Equal(0UL, BinaryPrimitives.ReadUInt64LittleEndian(fresh.AsSpan(16)));
        rand(10);
        var used = CheckpointFile.CaptureRng();
        Assert.Equal(625L, BinaryPrimitives.ReadInt32LittleEndian(used.AsSpan(8)) + (long)BinaryPrimitives.ReadUInt64LittleEndian(used.AsSpan(16)));

        // A valid state round-trips: the same draws follow.
        var expected = rand(5);
        CheckpointFile.RestoreRng(used);
        Assert.True(rand(5).Equals(expected));

        void Bad(Action<byte[]> edit, string expectedText)
        {
            var copy = (byte[])used.Clone();
            edit(copy);
            Assert.Contains(expectedText, Assert.Throws<InvalidDataException>(() => CheckpointFile.RestoreRng(copy)).Message);
        }
        Bad(s => BinaryPrimitives.WriteInt32LittleEndian(s.AsSpan(8), 0), "left = 0");
        Bad(s => BinaryPrimitives.WriteInt32LittleEndian(s.AsSpan(8), 625), "left = 625");
        Bad(s => BinaryPrimitives.WriteUInt64LittleEndian(s.AsSpan(16), 625), "next = 625");
        Bad(s => { BinaryPrimitives.WriteInt32LittleEndian(s.AsSpan(8), 5); BinaryPrimitives.WriteUInt64LittleEndian(s.AsSpan(16), 600); }, "which no generator produces");
        Bad(s => BinaryPrimitives.WriteInt32LittleEndian(s.AsSpan(12), 0), "unseeded");
        Bad(s => s[5052] = 2, "flag byte of 2");
        Assert.Contains("2 bytes", Assert.Throws<InvalidDataException>(() => CheckpointFile.RestoreRng([1, 2])).Message);
    }

    // Each optimizer Seg trains with, as configured; "other" is a differently configured one, whose options the
    // checkpoint must overwrite.
    static optim.Optimizer Make(string kind, nn.Module m, bool other) => kind switch
    {
        "adamw" => optim.AdamW(m.parameters(), other ? 0.5 : 0.01, weight_decay: other ? 0 : 0.1, amsgrad: true),
        _ => optim.SGD(m.parameters(), other ? 0.5 : 0.05, momentum: 0.9, nesterov: true),
    };

    [Theory]
    [InlineData("adamw")]
    [InlineData("sgd-nesterov")]
    public void ResumeIntoAFreshOptimizerIsBitIdentical(string kind)
    {
        var x = randn(16, 4, generator: new Generator(1));
        var y = randn(16, 3, generator: new Generator(2));
        void Step(nn.Module<Tensor, Tensor> m, optim.Optimizer o)
        {
            using var scope = NewDisposeScope();
            o.zero_grad();
            nn.functional.mse_loss(m.forward(x), y).backward();
            o.step();
        }

        manual_seed(0);
        var a = CheckpointFixtures.Net();
        var optA = Make(kind, a, other: false);
        for (var i = 0; i < 4; i++) Step(a, optA);

        manual_seed(0);
        var b = CheckpointFixtures.Net();
        var optB = Make(kind, b, other: false);
        for (var i = 0; i < 2; i++) Step(b, optB);
        var path = Path.Combine(dir, kind + ".ckpt");
        CheckpointFile.Save(path, State(), b, optB);

        manual_seed(5);
        var c = CheckpointFixtures.Net();
        var optC = Make(kind, c, other: true);   // no buffers yet, other options: all come from the file
        CheckpointFile.Load(path, c, optC);
        for (var i = 0; i < 2; i++) Step(c, optC);
        foreach (var (pa, pc) in a.parameters().Zip(c.parameters()))
            Assert.True(pa.Equals(pc), $"parameters differ after a {kind} resume");
    }
}
