using Seg.Train.Cli;
using Seg.Train.Config;

namespace Seg.Tests.Train;

/// <summary>
/// Hostile configs (issue 13): each is refused with a <see cref="ConfigException"/> naming the source, before
/// YamlDotNet builds a tree from it. Before the limits, the deep flow sequence killed the process with a stack
/// overflow, the alias chains and the 128 MiB key ran past 60 s, and the complex key threw InvalidCastException.
/// </summary>
public class ConfigLimitsTests
{
    static ConfigException Refused(string yaml, params string[] overrides) =>
        Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, "hostile.yaml", overrides));

    [Fact]
    public void FlowSequenceNestedAHundredThousandDeepIsRefusedNotAStackOverflow()
    {
        var e = Refused("name: " + new string('[', 100_000) + new string(']', 100_000) + "\n");
        Assert.Contains("hostile.yaml", e.Message);
        Assert.Contains($"more than {ConfigLoader.MaxDepth} levels deep", e.Message);
        Assert.Contains("line 1", e.Message);
    }

    [Fact]
    public void FlowMappingNestedDeepIsRefused() =>
        Assert.Contains("levels deep", Refused("name: " + new string('{', 50_000) + new string('}', 50_000) + "\n").Message);

    [Fact]
    public void BlockSequenceNestedDeepIsRefused() =>
        Assert.Contains("levels deep", Refused("name:\n  " + string.Concat(Enumerable.Repeat("- ", 100_000)) + "x\n").Message);

    [Fact]
    public void NestingAtTheLimitIsAccepted()
    {
        // 31 flow levels inside the root mapping: 32 in all. The binder then says what is wrong with the value.
        var e = Refused("name: " + new string('[', ConfigLoader.MaxDepth - 1) + "x" + new string(']', ConfigLoader.MaxDepth - 1) + "\n");
        Assert.Equal("name", e.KeyPath);
        Assert.Contains("expected a single value", e.Message);
    }

    // Billion laughs: each level doubles; nine levels would be 2^9 copies, 30 levels a billion.
    static string Laughs(int levels) =>
        "a0: &a0 [lol, lol]\n" + string.Concat(Enumerable.Range(1, levels).Select(i => $"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]\n"));

    [Theory]
    [InlineData("root")]
    [InlineData("loss term")]
    [InlineData("augment argument")]
    public void AliasChainsAreRefusedAtTheFirstAnchor(string where)
    {
        var yaml = where switch
        {
            "root" => Laughs(30) + "name: *a30\n",
            "loss term" => "loss:\n  - &t { type: cross_entropy }\n  - *t\n",
            _ => "data:\n  augment:\n    - { type: random_rotate, degrees: &d [1, 2] }\n    - { type: random_scale, range: *d }\n",
        };
        var e = Refused(yaml);
        Assert.Contains("anchors and aliases", e.Message);
        Assert.Contains("hostile.yaml", e.Message);
    }

    [Fact]
    public void ExplicitKeyOf128MiBIsRefusedBeforeParsing()
    {
        var e = Refused("? " + new string('k', 128 << 20) + "\n: 1\n");
        Assert.Contains($"limited to {ConfigLoader.MaxBytes} bytes", e.Message);
    }

    [Fact]
    public void HugeExplicitKeyUnderTheSizeLimitIsRefused()
    {
        var e = Refused("? " + new string('k', 200_000) + "\n: 1\n");
        Assert.Contains("a key of 200000 characters", e.Message);
    }

    [Fact]
    public void ComplexKeyInAnAugmentItemIsAConfigException()
    {
        var e = Refused("data:\n  augment:\n    - { type: horizontal_flip, [a, b]: 1 }\n");
        Assert.Contains("a key must be a plain name", e.Message);
        Assert.Contains("line 3", e.Message);
    }

    [Fact]
    public void ComplexKeyAtTheRootIsAConfigException() =>
        Assert.Contains("a key must be a plain name", Refused("? { a: 1 }\n: 2\n").Message);

    [Fact]
    public void RepeatedKeyIsAConfigException() =>
        Assert.Contains("Duplicate key", Refused("name: a\nname: b\n").Message);

    [Fact]
    public void OverrideValuesAreBoundedToo()
    {
        var e = Refused("name: a\n", "model.name=" + new string('[', 10_000));
        Assert.StartsWith("--set model.name=[[[", e.ConfigSource);
        Assert.Contains("levels deep", e.Message);
        Assert.Contains("anchors and aliases", Refused("name: a\n", "loss=[&x {type: dice}, *x]").Message);
    }

    [Fact]
    public void OversizedFileIsRefusedWithoutReadingItAll()
    {
        var path = Path.Combine(Path.GetTempPath(), $"seg-big-{Guid.NewGuid():N}.yaml");
        try
        {
            using (var f = File.Create(path)) f.SetLength(64L << 20);   // sparse: 64 MiB of zeros
            var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load(path));
            Assert.Contains(path, e.Message);
            Assert.Contains("limited to", e.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void EndlessDeviceIsRefused()
    {
        // Refused before it is opened, as not a regular file (issue 20); the size limit stays behind it.
        var message = Assert.Throws<ConfigException>(() => ConfigLoader.Load("/dev/zero")).Message;
        Assert.Contains(OperatingSystem.IsLinux() ? "character device" : "limited to", message);
    }

    [Fact]
    public void TrainOnAHostileConfigExitsWithTheConfigCode()
    {
        var path = Path.Combine(Path.GetTempPath(), $"seg-deep-{Guid.NewGuid():N}.yaml");
        try
        {
            File.WriteAllText(path, "name: " + new string('[', 100_000) + "\n");
            Assert.Equal(SegCli.ConfigError, SegCli.Run(["train", "--config", path]));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
