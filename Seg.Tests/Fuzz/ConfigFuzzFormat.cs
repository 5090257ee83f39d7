using System.Text;
using System.Text.Json;
using Seg.Train.Config;
using Seg.Train.Training;

namespace Seg.Tests.Fuzz;

/// <summary>
/// <c>train --config</c>: the YAML loader and the transform pipelines built from the config (what a run does with a
/// config before it touches data), seeded with the shipped configs (configs/*.yaml, copied to Fixtures/configs).
/// Config files keep their own typed error, <see cref="ConfigException"/>; one that names the file counts as a
/// refusal here.
/// </summary>
public sealed class ConfigFuzzFormat : IFuzzFormat
{
    public string Name => "yaml";
    public string FileName => "config.yaml";

    static IEnumerable<string> SeedFiles() =>
        Directory.EnumerateFiles(Path.Combine(AppContext.BaseDirectory, "Fixtures", "configs"), "*.yaml").Order(StringComparer.Ordinal);

    public IReadOnlyList<FuzzSeed> Seeds() => SeedFiles().Select(f => new FuzzSeed(Path.GetFileName(f), File.ReadAllBytes(f), [])).ToList();

    public string Read(string path)
    {
        try
        {
            var config = ConfigLoader.Load(path);
            var train = RunFactory.TrainPipeline(config.Data, path);
            RunFactory.ValPipeline(config.Data, train, path);
            return FuzzFormats.Hash(JsonSerializer.Serialize(config));
        }
        catch (ConfigException e) when (e.ConfigSource == path)
        {
            throw new InvalidDataException(e.Message, e);
        }
    }

    static FuzzCase Text(string id, string yaml) => new(id, Encoding.UTF8.GetBytes(yaml));

    /// <summary>Billion laughs: each level doubles, 30 levels make 2^30 copies of "lol".</summary>
    static string Laughs => "a0: &a0 [lol, lol]\n" + string.Concat(Enumerable.Range(1, 30).Select(i => $"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]\n"));

    public IEnumerable<FuzzCase> Crafted()
    {
        yield return Text("flow-sequence-100000-deep", "name: " + new string('[', 100_000) + new string(']', 100_000) + "\n");
        yield return Text("flow-mapping-100000-deep", "name: " + string.Concat(Enumerable.Repeat("{a: ", 100_000)) + "1" + new string('}', 100_000) + "\n");
        yield return Text("flow-unclosed-100000-deep", new string('[', 100_000));
        yield return Text("block-sequence-100000-deep", "name:\n  " + string.Concat(Enumerable.Repeat("- ", 100_000)) + "x\n");
        yield return Text("block-mapping-deep", string.Concat(Enumerable.Range(0, 5000).Select(i => new string(' ', i) + "k:\n")));
        yield return Text("billion-laughs-root-key", Laughs + "name: *a30\n");
        yield return Text("billion-laughs-loss-term", Laughs + "loss:\n  - { type: dice, class_weights: *a30 }\n");
        yield return Text("billion-laughs-augment-argument", Laughs + "data:\n  augment:\n    - { type: random_rotate, degrees: *a30 }\n");
        yield return Text("alias-as-key", "a: &k name\n*k : x\n");
        yield return Text("explicit-key-2MiB", "? " + new string('k', 2 << 20) + "\n: 1\n");
        yield return Text("explicit-key-900KB", "? " + new string('k', 900_000) + "\n: 1\n");
        yield return Text("plain-key-2000", new string('k', 2000) + ": 1\n");
        yield return Text("complex-key-augment-item", "data:\n  augment:\n    - { type: horizontal_flip, [a, b]: 1 }\n");
        yield return Text("complex-key-mapping-in-transform", "data:\n  augment:\n    - { type: random_crop, size: 8, ? {x: 1} : 2 }\n");
        yield return Text("complex-key-root", "? [name]\n: x\n");
        yield return Text("duplicate-key", "name: a\nname: b\n");
        yield return Text("null-key", "? \n: x\n");
        yield return Text("root-sequence", "- a\n- b\n");
        yield return Text("root-scalar", "just text\n");
        yield return Text("tags", "name: !!python/object:os.system echo\nmodel: !custom { name: unet }\n");
        yield return Text("binary-tag", "name: !!binary aGVsbG8=\n");
        yield return Text("many-documents", string.Concat(Enumerable.Repeat("---\nname: a\n", 20_000)));
        yield return Text("wide-list", "data:\n  crop_size: [" + string.Join(",", Enumerable.Repeat("64", 200_000)) + "]\n");
        yield return Text("nested-augment-args", "data:\n  augment:\n    - { type: random_rotate, degrees: [[[[1]]], {a: [2]}] }\n");
        yield return Text("augment-not-list", "data:\n  augment: { type: horizontal_flip }\n");
        yield return Text("augment-item-scalar", "data:\n  augment: [horizontal_flip]\n");
        yield return Text("numbers-at-the-edges", "train: { iterations: 99999999999999999999, seed: -2147483649, threads: 1e400 }\n");
        yield return Text("size-2^31", "data:\n  augment:\n    - { type: resize, size: [2147483648, 1] }\n");
        yield return Text("not-utf8", "name: \xff\xfe\n");
        yield return new("invalid-utf8-bytes", [.. "name: "u8, 0xC3, 0x28, 0xFF, (byte)'\n']);
        yield return new("nul-bytes", [.. "name: a"u8, 0, 0, 0, (byte)'\n']);
        yield return new("bom-only", [0xEF, 0xBB, 0xBF]);
        yield return new("empty", []);
    }

    /// <summary>Line-level and token-level edits that keep the text mostly YAML: a scalar replaced by a hostile
    /// value, a line duplicated, deleted or re-indented, an anchor or alias inserted.</summary>
    public IEnumerable<FuzzCase> Structured(Random rng, int count)
    {
        string[] values = ["[", "]", "{", "}", "&a x", "*a", "? [k]", "!!binary AAAA", "~", "null", "1e400", "-1", "0",
            "2147483648", "99999999999999999999", "NaN", ".inf", "'", "\"", "\"\\u0000\"", "[[[[[[]]]]]]", "{a: {b: {c: 1}}}",
            "[1, 2, 3, 4, 5]", "- x", ": x", "|\n  block", ">-\n  folded", "yes", "0x10", "0o17", "+12", "1_000", "2147483647",
            new string('x', 5000), "\t", "# comment", "%YAML 1.2", "---", "..."];
        var seeds = SeedFiles().Select(f => (Path.GetFileName(f), File.ReadAllLines(f))).ToList();
        for (var i = 0; i < count; i++)
        {
            var (name, lines) = seeds[rng.Next(seeds.Count)];
            var copy = lines.ToList();
            var at = rng.Next(copy.Count);
            string kind;
            switch (rng.Next(5))
            {
                case 0:
                    var colon = copy[at].IndexOf(": ", StringComparison.Ordinal);
                    var value = values[rng.Next(values.Length)];
                    copy[at] = colon >= 0 ? copy[at][..(colon + 2)] + value : copy[at] + " " + value;
                    kind = "value";
                    break;
                case 1: copy.Insert(at, copy[at]); kind = "duplicate"; break;
                case 2: copy.RemoveAt(at); kind = "delete"; break;
                case 3: copy[at] = new string(' ', rng.Next(12)) + copy[at].TrimStart(); kind = "indent"; break;
                default: copy[at] = copy[at] + (rng.Next(2) == 0 ? " &a" : " *a"); kind = "anchor"; break;
            }
            yield return Text($"{name}/{kind}@{at}/{i}", string.Join('\n', copy) + "\n");
        }
    }
}
