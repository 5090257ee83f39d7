using System.Text.Json.Nodes;
using Seg.Train.Checkpoints;
using Seg.Train.Config;
using Seg.Train.Evaluation;
using Seg.Train.Training;
using static TorchSharp.torch;

namespace Seg.Tests.Train;

/// <summary><c>train.precision</c> end to end on TinyRun: bf16 and fp16 train, record their precision, resume
/// bit-identically (fp16 with its scaler state), and eval follows the run's precision unless overridden.</summary>
[Collection("Trainer")]
public class MixedPrecisionTrainingTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("seg-amp-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    static string Last(string run) => Path.Combine(run, "checkpoints", "last.ckpt");

    static JsonNode Metrics(string run) => JsonNode.Parse(File.ReadAllText(Path.Combine(run, "metrics.json")))!;

    static string Scores(string run)
    {
        var json = Metrics(run).AsObject();
        json.Remove("run");
        return json.ToJsonString();
    }

    [Theory]
    [InlineData("bf16")]
    [InlineData("fp16")]
    public void Reduced_precision_run_records_its_precision_and_resumes_bit_identically(string precision)
    {
        var set = $"train.precision={precision}";
        var straight = Path.Combine(dir, "straight");
        Assert.Equal(TrainStatus.Completed, Trainer.Run(TinyRun.Request(straight, false, set)).Status);

        var state = CheckpointFile.ReadState(Last(straight));
        Assert.Equal(precision, state.Precision);
        Assert.Equal(precision, (string)Metrics(straight)["run"]!["precision"]!);
        Assert.Contains($"| precision | {precision} |", File.ReadAllText(Path.Combine(straight, "report.md")));
        if (precision == "fp16")
        {
            // six scaled steps: either all clean (tracker 6 at scale 2^16) or some skipped, each halving the scale
            var scaler = Assert.IsType<Seg.Core.Amp.GradScalerState>(state.Scaler);
            Assert.True(scaler.Scale <= 65536f && scaler.GrowthTracker <= 6, $"{scaler}");
        }
        else Assert.Null(state.Scaler);

        // autocast really ran: the losses differ from float32 training's
        var fp32 = Path.Combine(dir, "fp32");
        Trainer.Run(TinyRun.Request(fp32));
        Assert.NotEqual(File.ReadAllText(Path.Combine(fp32, "train_log.csv")), File.ReadAllText(Path.Combine(straight, "train_log.csv")));

        var resumed = Path.Combine(dir, "resumed");
        using (var stop = new CancellationTokenSource())
        {
            stop.Cancel();
            Assert.Equal(TrainStatus.Interrupted, Trainer.Run(TinyRun.Request(resumed, false, set), stop.Token).Status);
        }
        Assert.Equal(TrainStatus.Completed, Trainer.Run(TinyRun.Request(resumed, true, set)).Status);
        Assert.Equal(File.ReadAllText(Path.Combine(straight, "train_log.csv")), File.ReadAllText(Path.Combine(resumed, "train_log.csv")));
        Assert.Equal(Scores(straight), Scores(resumed));
        Assert.Equal(state.Scaler, CheckpointFile.ReadState(Last(resumed)).Scaler);
    }

    [Fact]
    public void Eval_uses_the_runs_precision_unless_overridden()
    {
        var run = Path.Combine(dir, "bf16");
        Trainer.Run(TinyRun.Request(run, false, "train.precision=bf16"));
        var (asTrained, _) = EvalCommand.Run(null, [], Last(run), Path.Combine(dir, "eval-bf16"));
        Assert.Equal("bf16", (string)Metrics(Path.Combine(dir, "eval-bf16"))["run"]!["precision"]!);
        var (inFp32, _) = EvalCommand.Run(null, ["train.precision=fp32"], Last(run), Path.Combine(dir, "eval-fp32"));
        Assert.Equal("fp32", (string)Metrics(Path.Combine(dir, "eval-fp32"))["run"]!["precision"]!);
        // the same weights scored in bf16 during training and in eval
        Assert.Equal((double)Metrics(run)["mIoU"]!, asTrained.Metrics.MeanIoU);
        asTrained.DisposeSamples();
        inFp32.DisposeSamples();
    }

    [Fact]
    public void Auto_picks_bf16_exactly_where_the_cpu_has_bf16_instructions()
    {
        var flags = File.Exists("/proc/cpuinfo") ? File.ReadAllText("/proc/cpuinfo") : "";
        var native = flags.Contains(" avx512_bf16") || flags.Contains(" amx_bf16");
        var chosen = RunPrecision.Resolve("auto", CPU);
        Assert.Equal(native ? "bf16" : "fp32", chosen.Name);
        Assert.StartsWith($"{chosen.Name} (auto: CPU ", chosen.Describe());
        Assert.Equal("fp16", RunPrecision.Resolve("fp16", CPU).Describe());
    }

    [Fact]
    public void Config_accepts_the_precision_keys_and_names_a_bad_value()
    {
        var config = ConfigLoader.Parse(TinyRun.Yaml, "tiny.yaml", ["train.precision=auto", "train.cudnn_benchmark=false", "train.tf32=true"]);
        Assert.Equal("auto", config.Train.Precision);
        Assert.False(config.Train.CudnnBenchmark);
        Assert.True(config.Train.Tf32);
        Assert.Null(ConfigLoader.Parse(TinyRun.Yaml, "tiny.yaml", []).Train.CudnnBenchmark);
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(TinyRun.Yaml, "tiny.yaml", ["train.precision=bf15"]));
        Assert.Contains("precision", e.Message);
        Assert.Contains("bf16", e.Message);
        // on the CPU the GPU switches are accepted and change nothing
        GpuSwitches.Apply(config.Train, CPU);
    }
}
