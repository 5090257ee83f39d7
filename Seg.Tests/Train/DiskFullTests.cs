using Seg.Core;
using Seg.Train.Checkpoints;
using Seg.Train.Cli;
using Seg.Train.Training;
using static TorchSharp.torch;

namespace Seg.Tests.Train;

/// <summary>
/// A disk that fills up while training saves (issue 13), on a real tmpfs: the save fails with one clear line,
/// the previous <c>last.ckpt</c> and <c>best.ckpt</c> stay intact and loadable, and no half-written file is left.
/// </summary>
[Collection("Trainer")]
public class DiskFullTests
{
    public DiskFullTests() => SegRuntime.Initialize();

    static CheckpointState State(long iteration) =>
        new(iteration, 0.5, iteration, "name: t\n", [], ["a", "b"], [[0, 0, 0], [1, 1, 1]], CheckpointFile.CaptureRng());

    [TmpfsFact]
    public void SaveOnAFullDiskKeepsThePreviousFileAndLeavesNoTemporary()
    {
        using var disk = new Tmpfs(1 << 20);
        var model = nn.Linear(64, 256);   // 66 KB of weights, 132 KB with SGD momentum
        var opt = optim.SGD(model.parameters(), 0.1, momentum: 0.9);
        model.forward(ones(2, 64)).sum().backward();
        opt.step();
        var path = Path.Combine(disk.Path, "last.ckpt");
        CheckpointFile.Save(path, State(1), model, opt);
        var size = new FileInfo(path).Length;
        Assert.True(size > 128 << 10, $"checkpoint of {size} bytes");

        Tmpfs.Fill(Path.Combine(disk.Path, "filler"), leave: 48 << 10);
        opt.step();
        var e = Assert.Throws<IOException>(() => CheckpointFile.Save(path, State(2), model, opt));
        Assert.Contains($"cannot save {path}: no space left on device", e.Message);
        Assert.Contains("the previous last.ckpt is intact and no partial file is left", e.Message);
        Assert.DoesNotContain('\n', e.Message);

        Assert.Equal(["filler", "last.ckpt"], Directory.GetFiles(disk.Path).Select(Path.GetFileName).Order());
        Assert.Equal(size, new FileInfo(path).Length);
        var fresh = nn.Linear(64, 256);
        Assert.Equal(1, CheckpointFile.Load(path, fresh, optim.SGD(fresh.parameters(), 0.1, momentum: 0.9)).Iteration);

        File.Delete(Path.Combine(disk.Path, "filler"));
        CheckpointFile.Save(path, State(2), model, opt);
        Assert.Equal(2, CheckpointFile.ReadState(path).Iteration);
    }

    [TmpfsFact]
    public void TrainingStopsWithOneLineWhenTheDiskFillsAndBothCheckpointsSurvive()
    {
        using var disk = new Tmpfs(32 << 20);
        var output = Path.Combine(disk.Path, "run");
        // Wide enough that a checkpoint (~1 MB) cannot fit in what is left; one thread: see TinyRun.
        string[] common = ["model.unet_base_width=48", "train.threads=1", "train.eval_every=1", "train.checkpoint_every=1"];
        var paths = ResumeFaultTests.TrainOneStep(output, [.. common, "train.iterations=1"]);
        var last = File.ReadAllBytes(paths.Last);
        var best = File.ReadAllBytes(paths.Best);
        Assert.True(last.Length > 512 << 10, $"last.ckpt of {last.Length} bytes");

        Tmpfs.Fill(Path.Combine(disk.Path, "filler"), leave: 256 << 10);
        var e = Assert.Throws<IOException>(() => Trainer.Run(TinyRun.Request(output, true, [.. common, "train.iterations=2"])));
        Assert.Contains("no space left on device", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal(1, SegCli.Guard(() => throw e));   // the CLI prints it as one "error: ..." line and exits 1

        // Both checkpoints are the ones from before, byte for byte, and a run resumes from them.
        Assert.Equal(last, File.ReadAllBytes(paths.Last));
        Assert.Equal(best, File.ReadAllBytes(paths.Best));
        Assert.Empty(Directory.GetFiles(paths.Checkpoints, "*.tmp"));
        Assert.True(CheckpointFile.CanResumeFrom(paths.Last, out var state, out _));
        Assert.Equal(1, state!.Iteration);

        // Space again, and a temporary file as a killed save would leave one: the next start removes it and goes on.
        File.Delete(Path.Combine(disk.Path, "filler"));
        var stale = Path.Combine(paths.Checkpoints, ".last.ckpt.4242.tmp");
        File.WriteAllBytes(stale, new byte[1000]);
        var outcome = Trainer.Run(TinyRun.Request(output, true, [.. common, "train.iterations=2"]));
        Assert.Equal(TrainStatus.Completed, outcome.Status);
        Assert.False(File.Exists(stale));
        Assert.Equal(2, CheckpointFile.ReadState(paths.Last).Iteration);
    }
}
