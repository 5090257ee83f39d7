using Seg.Train.Cli;
using Seg.Train.Config;
using Seg.Train.Training;

namespace Seg.Tests.Train;

public class CliTests
{
    [Fact]
    public void ConfigErrorExitsWithConfigCode() =>
        Assert.Equal(SegCli.ConfigError, SegCli.Guard(() => throw new ConfigException("a.yaml", "optimizer.lrr", "unknown key")));

    [Fact]
    public void DivergenceExitsWithItsOwnCode() =>
        Assert.Equal(SegCli.Diverged, SegCli.Guard(() => throw new TrainingDivergedException(7, "lovasz_softmax", double.NaN)));

    [Fact]
    public void MissingFileExitsNonZero() =>
        Assert.Equal(1, SegCli.Guard(() => throw new FileNotFoundException("checkpoint not found: x.ckpt")));

    [Theory]
    [InlineData("train", "--config", "--set", "--output", "--resume", "--restart")]
    [InlineData("eval", "--config", "--checkpoint", "--output", "--device")]
    [InlineData("predict", "--checkpoint", "--input", "--output", "--device", "--allow-nonfinite")]
    public void VerbsHaveTheContractOptions(string verb, params string[] options)
    {
        var command = SegCli.Build(CancellationToken.None).Subcommands.Single(c => c.Name == verb);
        foreach (var option in options)
            Assert.Contains(command.Options, o => o.Name == option);
    }

    [Fact]
    public void RepeatedSetOptionsAreAllKept()
    {
        var root = SegCli.Build(CancellationToken.None);
        var result = root.Parse(["train", "--set", "a.b=1", "--set", "c=2", "--resume"]);
        Assert.Empty(result.Errors);
        Assert.Equal(["a.b=1", "c=2"], result.GetValue<string[]>("--set")!);
    }

    [Fact]
    public void PredictWithoutRequiredOptionsIsAParseError()
    {
        var result = SegCli.Build(CancellationToken.None).Parse(["predict", "--input", "x.png"]);
        Assert.NotEmpty(result.Errors);
    }

    // train @/dev/zero ran out of memory and a self-naming response file overflowed the stack: '@' is a plain character.
    [Fact]
    public void ResponseFilesAreOff()
    {
        var root = SegCli.Build(CancellationToken.None);
        var result = root.Parse(["train", "--config", "@/dev/zero"], SegCli.Parsing);
        Assert.Empty(result.Errors);
        Assert.Equal("@/dev/zero", result.GetValue<string>("--config"));
        Assert.NotEmpty(root.Parse(["train", "@/dev/zero"], SegCli.Parsing).Errors);
    }
}
