using Seg.Train.Checkpoints;
using Seg.Train.Cli;
using Seg.Train.Training;

namespace Seg.Tests.Train;

/// <summary>
/// <c>--resume</c> from a damaged or hostile <c>last.ckpt</c> (issue 13): a clear error naming the file, which
/// offers <c>best.ckpt</c> when that one is intact (it is a complete resume point); never a crash.
/// </summary>
[Collection("Trainer")]
public class ResumeFaultTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("seg-resume-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    // One thread (see TinyRun); one step with an evaluation, so best.ckpt and last.ckpt are both at iteration 1.
    static readonly string[] OneStep = ["train.threads=1", "train.iterations=1"];
    static readonly string[] TwoSteps = ["train.threads=1", "train.iterations=2"];

    RunPaths TrainOneStep() => TrainOneStep(dir, OneStep);

    /// <summary>
    /// Trains one step into <paramref name="output"/> and returns its paths, retrying while the saved weights are not
    /// finite. On some hosts libtorch 2.10's CPU convolution backward now and then yields non-finite gradients (seen
    /// on a shared AMD EPYC machine, mostly with several threads); a resume from such weights diverges at its first
    /// step, which is not what these tests are about. A finite checkpoint at iteration 1 makes a resume to 2 safe:
    /// the loss of step 2 is computed from it, and a run that ends at 2 checks no later loss.
    /// </summary>
    public static RunPaths TrainOneStep(string output, string[] overrides)
    {
        var paths = new RunPaths(output);
        for (var attempt = 0; ; attempt++)
        {
            Trainer.Run(TinyRun.Request(output, false, overrides));
            if (CheckpointBytes.ModelIsFinite(File.ReadAllBytes(paths.Last)) || attempt == 4) return paths;
        }
    }

    [Fact]
    public void DamagedLastCheckpointNamesItAndOffersAnIntactBestOne()
    {
        var paths = TrainOneStep();
        var bytes = File.ReadAllBytes(paths.Last);
        bytes[bytes.Length / 2] ^= 0x10;
        File.WriteAllBytes(paths.Last, bytes);

        var e = Assert.Throws<InvalidDataException>(() => Trainer.Run(TinyRun.Request(dir, true, TwoSteps)));
        Assert.StartsWith($"{paths.Last}: damaged", e.Message);
        Assert.Contains($"{paths.Best} is intact (iteration 1): to resume from there, copy it over {paths.Last} and run with --resume again.", e.Message);

        // Taking the offer works: best.ckpt holds the optimizer and RNG state too.
        File.Copy(paths.Best, paths.Last, overwrite: true);
        Assert.Equal(TrainStatus.Completed, Trainer.Run(TinyRun.Request(dir, true, TwoSteps)).Status);
        Assert.Equal(2, CheckpointFile.ReadState(paths.Last).Iteration);
    }

    [Fact]
    public void TruncatedLastCheckpointWithoutBestSaysThereIsNothingToFallBackOn()
    {
        var paths = TrainOneStep();
        File.Delete(paths.Best);
        var bytes = File.ReadAllBytes(paths.Last);
        File.WriteAllBytes(paths.Last, bytes[..(bytes.Length / 3)]);
        var e = Assert.Throws<InvalidDataException>(() => Trainer.Run(TinyRun.Request(dir, true, TwoSteps)));
        Assert.StartsWith(paths.Last, e.Message);
        Assert.Contains("There is no best.ckpt to fall back on", e.Message);
    }

    [Fact]
    public void TwoByteRngStateFailsTheResumeWithAMessageInsteadOfAbortingTheProcess()
    {
        var paths = TrainOneStep();
        var bytes = File.ReadAllBytes(paths.Last);
        var header = CheckpointBytes.Header(bytes);
        header["RngState"] = Convert.ToBase64String(new byte[2]);
        File.WriteAllBytes(paths.Last, CheckpointBytes.WithHeader(bytes, header.ToJsonString()));
        var config = Path.Combine(dir, "tiny.yaml");
        File.WriteAllText(config, TinyRun.Yaml);

        // Through the CLI, as a user would run it: exit code 1, not SIGABRT (which would take the test host down).
        Assert.Equal(1, SegCli.Run(["train", "--config", config, "--output", dir, "--resume", "--set", "train.threads=1", "--set", "train.iterations=2"]));
        var e = Assert.Throws<InvalidDataException>(() => Trainer.Run(TinyRun.Request(dir, true, TwoSteps)));
        Assert.Contains("its RNG state is 2 bytes; torch's CPU generator state is 5056 bytes", e.Message);
        Assert.Contains($"{paths.Best} is intact", e.Message);
    }
}
