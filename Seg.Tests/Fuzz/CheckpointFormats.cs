using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Seg.Tests.Train;
using Seg.Train.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Tests.Fuzz;

/// <summary>
/// The committed checkpoint fixtures (Fixtures/checkpoints) and the recipe that wrote them: a small network, its
/// optimizer after two steps (SGD with Nesterov momentum, or AdamW with amsgrad), a loss module with state, and a
/// header with a real config, class names, palette and RNG state. The fuzz seeds, and a test that this version
/// still loads them bit for bit.
/// </summary>
public static class CheckpointFixtures
{
    public static readonly string[] Names = ["sgd.ckpt", "adamw.ckpt"];

    const string Config = """
        name: fixture
        model: { name: unet, unet_depth: 1, unet_base_width: 4 }
        data: { type: shapes, size: 32, crop_size: [32, 32], batch_size: 2, workers: 0 }
        loss:
          - { type: cross_entropy }
          - { type: lovasz_softmax, start: 0.5 }
        optimizer: { type: sgd, lr: 0.05, momentum: 0.9, nesterov: true }
        train: { iterations: 2, device: cpu }

        """;

    public static nn.Module<Tensor, Tensor> Net() => nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3));

    /// <summary>Stands in for a loss with state (center loss): a module with a parameter and a buffer.</summary>
    public static nn.Module<Tensor, Tensor> Loss() => nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2));

    public static optim.Optimizer Optimizer(string name, nn.Module model) => name switch
    {
        "sgd.ckpt" => optim.SGD(model.parameters(), 0.05, momentum: 0.9, nesterov: true, weight_decay: 1e-4),
        "adamw.ckpt" => optim.AdamW(model.parameters(), 0.01, weight_decay: 0.05, amsgrad: true),
        _ => throw new ArgumentException(name),
    };

    /// <summary>Model, optimizer and loss state as the recipe leaves them, and the header.</summary>
    public static (nn.Module<Tensor, Tensor> Model, optim.Optimizer Optimizer, nn.Module<Tensor, Tensor> Loss, CheckpointState State) Make(string name)
    {
        manual_seed(13);
        var model = Net();
        var loss = Loss();
        var opt = Optimizer(name, model);
        var x = randn(5, 4);
        for (var i = 0; i < 2; i++)
        {
            using var scope = NewDisposeScope();
            opt.zero_grad();
            loss.forward(model.forward(x)).pow(2).mean().backward();
            opt.step();
        }
        rand(3);
        var state = new CheckpointState(2, 0.25, 2, Config, ["train.iterations=2"], ["background", "square", "disc"],
            [[0, 0, 0], [128, 0, 0], [0, 128, 0]], CheckpointFile.CaptureRng());
        return (model, opt, loss, state);
    }

    /// <summary>Writes the fixtures into <paramref name="directory"/> (how the committed ones were made).</summary>
    public static void Write(string directory)
    {
        foreach (var name in Names)
        {
            var (model, opt, loss, state) = Make(name);
            CheckpointFile.Save(Path.Combine(directory, name), state, model, opt, loss);
        }
    }

    /// <summary>An optimizer's buffers under the names a checkpoint gives them: <c>state.{i}.{field}</c>.</summary>
    public static Dictionary<string, Tensor> OptimizerBuffers(optim.Optimizer optimizer)
    {
        var result = new Dictionary<string, Tensor>();
        var i = 0;
        foreach (var s in ((TorchSharp.Modules.OptimizerHelper)optimizer).state_dict().State)
        {
            void Add(string field, Tensor? t) { if (t is not null) result[$"state.{i}.{field}"] = t; }
            switch (s)
            {
                case TorchSharp.Modules.SGD.State sgd:
                    Add("momentum_buffer", sgd.momentum_buffer);
                    break;
                case TorchSharp.Modules.AdamW.State adam:
                    Add("exp_avg", adam.exp_avg);
                    Add("exp_avg_sq", adam.exp_avg_sq);
                    Add("max_exp_avg_sq", adam.max_exp_avg_sq);
                    break;
            }
            i++;
        }
        return result;
    }

    /// <summary>Reads a checkpoint as <c>--resume</c> does (header, then model, optimizer and loss state, then the RNG),
    /// with SGD or, when the file holds AdamW state, AdamW; returns a digest of everything restored.</summary>
    public static string Resume(string path)
    {
        var model = Net();
        var loss = Loss();
        var header = CheckpointFile.ReadState(path);
        var name = File.ReadAllBytes(path).AsSpan().IndexOf("\"Type\":\"AdamW\""u8) >= 0 ? "adamw.ckpt" : "sgd.ckpt";
        var opt = Optimizer(name, model);
        var state = CheckpointFile.Load(path, model, opt, loss);
        CheckpointFile.RestoreRng(state.RngState);
        var sb = new StringBuilder();
        sb.Append(state.Iteration).Append(state.BestMeanIoU.ToString("R", CultureInfo.InvariantCulture)).Append(state.ConfigYaml)
          .AppendJoin(',', state.ClassNames).AppendJoin(',', state.Palette.SelectMany(c => c)).Append(Convert.ToHexString(state.RngState));
        var tensors = new Dictionary<string, Tensor>();
        foreach (var (k, v) in model.state_dict()) tensors["model." + k] = v.detach().clone();
        foreach (var (k, v) in loss.state_dict()) tensors["loss." + k] = v.detach().clone();
        foreach (var (k, v) in OptimizerBuffers(opt)) tensors["optimizer." + k] = v.clone();
        foreach (var s in ((TorchSharp.Modules.OptimizerHelper)opt).state_dict().State)
            if (s is TorchSharp.Modules.AdamW.State adam) sb.Append(adam.step).Append(',');
        return FuzzFormats.Hash(sb + FuzzFormats.Digest(tensors));
    }
}

/// <summary>
/// Seg's <c>.ckpt</c> through the resume path (<see cref="CheckpointFixtures.Resume"/>), mutated as raw bytes: almost
/// every mutation must be caught by the SHA-256; the crafted cases carry a correct hash.
/// </summary>
public class CheckpointFuzzFormat : IFuzzFormat
{
    public virtual string Name => "ckpt";
    public string FileName => "last.ckpt";

    public IReadOnlyList<FuzzSeed> Seeds() => CheckpointFixtures.Names.Select(n =>
    {
        var bytes = FuzzFormats.Fixture("checkpoints", n);
        return new FuzzSeed(n, bytes, CheckpointBytes.Layout(bytes).Fields.Select(f => new LengthField(f.Offset, f.Width, false, f.What)).ToList());
    }).ToList();

    public string Read(string path) => CheckpointFixtures.Resume(path);

    static byte[] Sgd() => FuzzFormats.Fixture("checkpoints", "sgd.ckpt");

    static string EditHeader(byte[] file, Action<JsonObject> edit)
    {
        var h = CheckpointBytes.Header(file);
        edit(h);
        return h.ToJsonString();
    }

    /// <summary>The hostile checkpoints of issue 13 and kin, each with a correct hash.</summary>
    public IEnumerable<FuzzCase> Crafted()
    {
        var sgd = Sgd();
        foreach (var size in new[] { 0, 1, 2, 8, 5055, 5057, 1 << 20 })
            yield return new($"rng-{size}-bytes", CheckpointBytes.WithHeader(sgd, EditHeader(sgd, h => h["RngState"] = Convert.ToBase64String(new byte[size]))));
        foreach (var (field, offset, value) in new[] { ("left0", 8, 0L), ("left625", 8, 625L), ("next625", 16, 625L), ("seeded0", 12, 0L), ("next-huge", 16, long.MaxValue) })
        {
            var rng = Convert.FromBase64String(CheckpointBytes.Header(sgd)["RngState"]!.GetValue<string>());
            if (offset == 16) BinaryPrimitives.WriteInt64LittleEndian(rng.AsSpan(16), value);
            else BinaryPrimitives.WriteInt32LittleEndian(rng.AsSpan(offset), (int)value);
            yield return new($"rng-{field}", CheckpointBytes.WithHeader(sgd, EditHeader(sgd, h => h["RngState"] = Convert.ToBase64String(rng))));
        }
        foreach (var json in new[] { "{}", "null", "[]", "\"x\"", "42", "{\"Iteration\":1,\"Iteration\":2}", new string('[', 10_000) + new string(']', 10_000) })
            yield return new($"header-{(json.Length > 20 ? "deep" : json)}", CheckpointBytes.WithHeader(sgd, json));
        yield return new("header-palette-short", CheckpointBytes.WithHeader(sgd, EditHeader(sgd, h => h["Palette"] = JsonNode.Parse("[[0,0,0]]"))));
        yield return new("header-palette-pair", CheckpointBytes.WithHeader(sgd, EditHeader(sgd, h => h["Palette"] = JsonNode.Parse("[[0,0],[1,1],[2,2]]"))));
        yield return new("header-no-classes", CheckpointBytes.WithHeader(sgd, EditHeader(sgd, h => h["ClassNames"] = JsonNode.Parse("[]"))));

        var dup = (byte[])sgd.Clone();
        dup[CheckpointBytes.Find(dup, "2.bias"u8.ToArray())] = (byte)'0';
        yield return new("repeated-name", CheckpointBytes.Rehash(dup));

        var optimizer = CheckpointBytes.Find(sgd, "{\"Type\":\"SGD\""u8.ToArray()) - 4;
        foreach (var at in new[] { optimizer, optimizer + 4, optimizer + 100, optimizer + 300, sgd.Length - 32 - 40 })
            yield return new($"optimizer-7-bytes-duplicated@{at - optimizer}", CheckpointBytes.Rehash([.. sgd[..(at + 7)], .. sgd[at..]]));

        var header = CheckpointBytes.Header(sgd).ToJsonString();
        foreach (var (id, count, dtype, shape) in new (string, uint, byte, long[])[]
                 {
                     ("count-2^32-1", uint.MaxValue, 6, [1]), ("dtype-100", 1, 100, [1]), ("dtype-127", 1, 127, [1]), ("dtype-255", 1, 255, [1]),
                     ("size-negative", 1, 6, [-1]), ("size-2^62", 1, 6, [1L << 62]), ("size-2^31-squared", 1, 6, [1L << 31, 1L << 31]),
                     ("ndim-200", 1, 6, new long[200]), ("bytes-wrap", 1, 6, [1L << 62, 4]),
                 })
            yield return new(id, CheckpointBytes.File(header, count, CheckpointBytes.Record("0.weight", dtype, shape, new byte[16])));
        yield return new("format-1", CheckpointBytes.Seal([0x08, .. "SEGCKPT1"u8, .. new byte[64]]));
        yield return new("magic-only", "SEGCKPT2"u8.ToArray());
        yield return new("empty", []);
        yield return new("header-length-2^32-1", CheckpointBytes.Seal([.. CheckpointBytes.Magic, .. CheckpointBytes.U32(uint.MaxValue), .. new byte[64]]));
    }
}

/// <summary>
/// The same files with the SHA-256 recomputed after mutating (<see cref="Encode"/>), so that the mutations reach
/// the structural checks behind the hash: what a crafted (not merely damaged) checkpoint can do.
/// </summary>
public sealed partial class RehashedCheckpointFuzzFormat : CheckpointFuzzFormat, IFuzzFormat
{
    public override string Name => "ckpt-rehashed";

    public byte[] Encode(byte[] mutated) => mutated.Length >= 32 + 8 ? CheckpointBytes.Rehash(mutated) : mutated;

    [GeneratedRegex("-?[0-9][0-9.eE+-]*|true|false|null|\"[A-Za-z]*\"")]
    private static partial Regex Value();

    /// <summary>A value in the header or optimizer JSON replaced by a boundary value, lengths kept right.</summary>
    public IEnumerable<FuzzCase> Structured(Random rng, int count)
    {
        string[] values = ["0", "-1", "1", "2", "255", "256", "2147483647", "2147483648", "4294967296", "9223372036854775807",
            "9223372036854775808", "1e400", "-0", "1.5", "NaN", "null", "true", "\"\"", "\"AdamW\"", "\"Adam\"", "[]", "{}", "[1,2,3]", "\"A\""];
        var seeds = CheckpointFixtures.Names.Select(n => (n, FuzzFormats.Fixture("checkpoints", n))).ToList();
        for (var i = 0; i < count; i++)
        {
            var (name, file) = seeds[rng.Next(seeds.Count)];
            var sections = JsonSections(file);
            var (start, length) = sections[rng.Next(sections.Count)];
            var json = Encoding.UTF8.GetString(file, start, length);
            var matches = Value().Matches(json);
            if (matches.Count == 0) continue;
            var m = matches[rng.Next(matches.Count)];
            var v = values[rng.Next(values.Length)];
            var edited = Encoding.UTF8.GetBytes(json[..m.Index] + v + json[(m.Index + m.Length)..]);
            byte[] content = [.. file[..(start - 4)], .. CheckpointBytes.U32((uint)edited.Length), .. edited, .. file[(start + length)..^32]];
            yield return new($"{name}/json@{start}+{m.Index}={v}", CheckpointBytes.Seal(content));
        }
    }

    // The two JSON documents of a checkpoint: the header and the optimizer description (offset, length).
    static List<(int Start, int Length)> JsonSections(byte[] file)
    {
        var result = new List<(int, int)> { (12, (int)BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(8))) };
        var i = file.AsSpan().IndexOf("{\"Type\":"u8);
        if (i >= 4) result.Add((i, (int)BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(i - 4))));
        return result;
    }
}
