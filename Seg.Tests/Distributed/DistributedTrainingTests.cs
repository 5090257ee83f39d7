using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace Seg.Tests.Distributed;

/// <summary>
/// Data-parallel training end to end: <c>mpirun --allow-run-as-root --oversubscribe -np 2 dotnet Seg.Train.dll
/// train</c> on a tiny recipe (32×32 shapes, a one-level UNet, one torch thread per rank) against one process.
/// </summary>
[Collection("Trainer")]
public class DistributedTrainingTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("seg-ddp-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    static readonly TimeSpan Limit = TimeSpan.FromMinutes(4);

    // Per-sample loss terms only (pixel-mean CE over equal-sized images, per-image Lovász), no ignored pixels: the
    // global batch's loss is the mean of the ranks' losses, so 2 x 4 with sync_bn is 1 x 8 up to rounding.
    const string Recipe = """
        name: ddp
        model: { name: unet, unet_depth: 1, unet_base_width: 8 }
        data:
          type: shapes
          size: 32
          crop_size: [32, 32]
          train_count: 16
          val_count: 4
          batch_size: 4
          workers: 0
          augment:
            - { type: horizontal_flip }
            - { type: normalize }
        loss:
          - { type: cross_entropy }
          - { type: lovasz_softmax, per_image: true }
        optimizer: { type: sgd, lr: 0.1, momentum: 0.9 }
        schedule: { type: poly }
        train: { iterations: 20, eval_every: 10, checkpoint_every: 5, seed: 3, device: cpu, threads: 1 }
        eval: { batch_size: 1, samples: 2 }
        """;

    string WriteRecipe()
    {
        var path = Path.Combine(dir, "ddp.yaml");
        File.WriteAllText(path, Recipe);
        return path;
    }

    static string[] Train(string config, string output, params string[] extra) =>
        [.. MpiJob.SegTrain, "train", "--config", config, "--output", output, .. extra];

    static List<double> Losses(string run) =>
        File.ReadAllLines(Path.Combine(run, "train_log.csv")).Skip(1)
            .Select(l => double.Parse(l.Split(',')[1], CultureInfo.InvariantCulture)).ToList();

    static double MeanIoU(string run) =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "metrics.json"))).RootElement.GetProperty("mIoU").GetDouble();

    static IEnumerable<string> Files(string root) =>
        Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(root, f))
            .Where(f => !f.StartsWith("tensorboard", StringComparison.Ordinal)).Order(StringComparer.Ordinal);

    [MpiFact]
    public void Two_processes_of_batch_4_with_sync_bn_train_as_one_process_of_batch_8_and_only_rank_0_writes()
    {
        var config = WriteRecipe();
        var work = Directory.CreateDirectory(Path.Combine(dir, "work")).FullName;
        var one = MpiJob.RunAlone(Train(config, Path.Combine(dir, "one"), "--set", "data.batch_size=8"), work, Limit);
        Assert.True(one.ExitCode == 0, one.ToString());
        var two = MpiJob.Run(2, Train(config, Path.Combine(dir, "two"), "--set", "model.sync_bn=true"), work, Limit);
        Assert.True(two.ExitCode == 0, two.ToString());

        var (expected, actual) = (Losses(Path.Combine(dir, "one")), Losses(Path.Combine(dir, "two")));
        Assert.Equal(20, actual.Count);   // one row per iteration: no second writer
        for (var i = 0; i < 10; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= 1e-3 * Math.Abs(expected[i]), $"iteration {i + 1}: loss {actual[i]} on 2 processes, {expected[i]} on one");
        Assert.InRange(MeanIoU(Path.Combine(dir, "two")), MeanIoU(Path.Combine(dir, "one")) - 0.02, MeanIoU(Path.Combine(dir, "one")) + 0.02);
        Assert.True(MeanIoU(Path.Combine(dir, "one")) > 0.22, "the recipe must learn something for the mIoU comparison to mean anything");

        // Rank 0 alone wrote: the same files as one process, nothing anywhere else, one progress stream.
        Assert.Equal(Files(Path.Combine(dir, "one")), Files(Path.Combine(dir, "two")));
        Assert.Empty(Directory.EnumerateFileSystemEntries(work));
        Assert.Single(two.Stdout.Split('\n'), l => l.StartsWith("done: ", StringComparison.Ordinal));
        Assert.Equal("# world size: 2", File.ReadLines(Path.Combine(dir, "two", "config.yaml")).ElementAt(1));
    }

    [MpiFact]
    public void A_killed_rank_ends_the_job_and_resume_on_two_processes_finishes_the_run()
    {
        var config = WriteRecipe();
        var run = Path.Combine(dir, "run");
        var last = Path.Combine(run, "checkpoints", "last.ckpt");
        using var job = MpiJob.Launch(2, Train(config, run, "--set", "train.iterations=60", "--set", "train.eval_every=0"), dir);
        var watch = Stopwatch.StartNew();
        while (!File.Exists(last) && !job.HasExited && watch.Elapsed < TimeSpan.FromMinutes(2)) Thread.Sleep(100);
        Assert.True(File.Exists(last), "no checkpoint appeared");
        var victims = MpiJob.RankProcesses(job.Id, 1);
        Assert.Single(victims);
        var survivors = MpiJob.RankProcesses(job.Id, 0).Select(Process.GetProcessById).ToList();
        Assert.Single(survivors);
        var killedAt = Stopwatch.StartNew();
        Process.GetProcessById(victims[0]).Kill();   // SIGKILL: no handler runs on that rank
        var ended = job.WaitForExit(TimeSpan.FromSeconds(60));
        if (!ended) job.Kill(entireProcessTree: true);
        Assert.True(ended, "the job outlived its killed rank by 60 s");
        Assert.NotEqual(0, job.ExitCode);
        // mpirun may return before the rank it signalled has gone; that rank still holds run.lock until it exits.
        Assert.True(survivors[0].WaitForExit(TimeSpan.FromSeconds(60)), "rank 0 outlived the job by 60 s");
        Assert.True(killedAt.Elapsed < TimeSpan.FromSeconds(60));

        var resumed = MpiJob.Run(2, Train(config, run, "--resume", "--set", "train.iterations=60", "--set", "train.eval_every=0"), dir, Limit);
        Assert.True(resumed.ExitCode == 0, resumed.ToString());
        var rows = File.ReadAllLines(Path.Combine(run, "train_log.csv")).Skip(1).Select(l => int.Parse(l.Split(',')[0], CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(Enumerable.Range(1, 60), rows);

        // Another world size with another global batch (1 x 4 instead of 2 x 4) is refused, naming both.
        var alone = MpiJob.RunAlone(Train(config, run, "--resume", "--set", "train.iterations=61", "--set", "train.eval_every=0"), dir, Limit);
        Assert.Equal(1, alone.ExitCode);
        Assert.Contains("global batch of 8 (data.batch_size 4 x 2 processes x train.accumulate 1) but this run's is 4", alone.Stderr);
    }

    [MpiFact]
    public void Ranks_with_different_configs_all_stop_naming_the_first_differing_key()
    {
        var config = WriteRecipe();
        var result = MpiJob.RunEach([
            Train(config, Path.Combine(dir, "run"), "--set", "train.iterations=6"),
            Train(config, Path.Combine(dir, "run"), "--set", "train.iterations=7")], dir, Limit);
        Assert.False(result.TimedOut, result.ToString());
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("error: the config differs between ranks", result.Stderr);
        Assert.Contains("key train.iterations is 6 on rank 0 but 7 on rank 1", result.Stderr);
        Assert.Contains("rank 1: error: the config differs", result.Stderr);
        Assert.False(Directory.Exists(Path.Combine(dir, "run", "checkpoints")));
    }

    [Theory]
    [InlineData("libmpi-missing.so.40", "0", "error: an MPI launcher started this process but libmpi-missing.so.40 cannot be loaded")]
    [InlineData("libmpi.so.40", "x", "error: OMPI_COMM_WORLD_RANK=x: the launcher's rank is not an integer")]
    public void A_bad_launcher_environment_gives_one_line(string library, string rank, string expected)
    {
        var config = WriteRecipe();
        var result = MpiJob.RunAlone(Train(config, Path.Combine(dir, "run")), dir, Limit, new Dictionary<string, string>
        {
            ["OMPI_COMM_WORLD_SIZE"] = "2", ["OMPI_COMM_WORLD_RANK"] = rank, ["SEG_LIBMPI"] = library,
        });
        Assert.Equal(1, result.ExitCode);
        var lines = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, result.ToString());
        Assert.StartsWith(expected, lines[0]);
        if (library != "libmpi.so.40") Assert.Contains("openmpi-bin", lines[0]);
        Assert.False(Directory.Exists(Path.Combine(dir, "run")));
    }
}
