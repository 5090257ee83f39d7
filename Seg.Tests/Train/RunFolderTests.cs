using System.Diagnostics;
using Seg.Core.IO;
using Seg.Train.Checkpoints;
using Seg.Train.Config;
using Seg.Train.Export;
using Seg.Train.Prediction;
using Seg.Train.Training;
using Seg.Platform.IO;

namespace Seg.Tests.Train;

/// <summary>
/// Issue 20, part 1: <c>train</c> never deletes what it did not write, never starts a run over by accident, and
/// never writes through a link; <c>export</c> and <c>predict</c> never replace what is not theirs to replace.
/// Each test builds the minimal folder that showed the fault.
/// </summary>
[Collection("Trainer")]
public class RunFolderTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("seg-runfolder-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    string Write(string relative, string text)
    {
        var path = Path.Combine(dir, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void AProjectFolderThatIsNotASegRunIsRefusedAndLeftAsItWas()
    {
        var project = Path.Combine(dir, "project");
        var plot = Write("project/plots/figure.png", "user's plot");
        var checkpoint = Write("project/checkpoints/model.pt", "user's weights");
        var e = Assert.Throws<IOException>(() => Trainer.Run(TinyRun.Request(project)));
        Assert.Contains("is not a Seg run folder", e.Message);
        Assert.Contains("'checkpoints'", e.Message);
        Assert.Equal("user's plot", File.ReadAllText(plot));
        Assert.Equal("user's weights", File.ReadAllText(checkpoint));
        Assert.Equal(["checkpoints", "plots"], Directory.GetFileSystemEntries(project).Select(Path.GetFileName).Order());
    }

    [Theory]
    [InlineData("..")]
    [InlineData(".")]
    [InlineData("")]
    [InlineData("a/b")]
    [InlineData("a\\\\b")]
    [InlineData(" tiny")]
    public void NamesThatAreNotOnePlainFolderNameAreRefused(string name)
    {
        var yaml = TinyRun.Yaml.Replace("name: tiny", $"name: \"{name}\"");
        var e = Assert.Throws<ConfigException>(() => Trainer.Run(new TrainRequest(yaml, "tiny.yaml", [], null, false)));
        Assert.Equal("name", e.KeyPath);
        Assert.Contains("one plain folder name", e.Message);
    }

    [Fact]
    public void EmptyOutputIsNamed()
    {
        var e = Assert.Throws<ArgumentException>(() => Trainer.Run(TinyRun.Request("")));
        Assert.Contains("--output ''", e.Message);
    }

    [Fact]
    public void ASecondTrainRefusesNamingResumeAndRestartKeepsTheOldCheckpointsUntilItSavesItsOwn()
    {
        var run = Path.Combine(dir, "run");
        var paths = new RunPaths(run);
        Trainer.Run(TinyRun.Request(run, false, "train.threads=1"));
        var last = File.ReadAllBytes(paths.Last);
        var best = File.ReadAllBytes(paths.Best);
        var notes = Write("run/notes.txt", "the user's notes");

        // Without --resume or --restart: refused, nothing touched.
        var e = Assert.Throws<IOException>(() => Trainer.Run(TinyRun.Request(run, false, "train.threads=1")));
        Assert.Contains("--resume", e.Message);
        Assert.Contains("--restart", e.Message);
        Assert.Contains("iteration 6", e.Message);
        Assert.Equal(last, File.ReadAllBytes(paths.Last));
        Assert.Equal(best, File.ReadAllBytes(paths.Best));
        Assert.True(File.Exists(paths.Metrics));
        Assert.Throws<ArgumentException>(() => Trainer.Run(new TrainRequest(TinyRun.Yaml, "tiny.yaml", [], run, Resume: true, Restart: true)));

        // --restart whose new run fails before its first save (step 1 diverges): the old checkpoints are all there.
        Assert.Throws<TrainingDivergedException>(() => Trainer.Run(new TrainRequest(TinyRun.Yaml, "tiny.yaml",
            ["train.threads=1", "data.augment.2.std=[1e-45, 1e-45, 1e-45]"], run, Resume: false, Restart: true)));
        Assert.Equal(last, File.ReadAllBytes(paths.Last));
        Assert.Equal(best, File.ReadAllBytes(paths.Best));
        Assert.False(File.Exists(paths.Metrics));                  // the old run's report is gone: it is not the new run's
        Assert.False(File.Exists(Path.Combine(paths.Plots, "loss.png")));
        Assert.Equal("the user's notes", File.ReadAllText(notes));  // not Seg's: kept

        // --restart interrupted after its first step: it saved last.ckpt, and the old best.ckpt went with it.
        using var stop = new CancellationTokenSource();
        stop.Cancel();
        var outcome = Trainer.Run(new TrainRequest(TinyRun.Yaml, "tiny.yaml", ["train.threads=1"], run, Resume: false, Restart: true), stop.Token);
        Assert.Equal(TrainStatus.Interrupted, outcome.Status);
        Assert.Equal(1, CheckpointFile.ReadState(paths.Last).Iteration);
        Assert.False(File.Exists(paths.Best));
        Assert.Equal("the user's notes", File.ReadAllText(notes));
    }

    [Fact]
    public void APlantedLockLinkIsRefusedAndItsTargetUntouched()
    {
        var victim = Write("victim.txt", "precious");
        var run = Path.Combine(dir, "run");
        Directory.CreateDirectory(run);
        File.CreateSymbolicLink(Path.Combine(run, RunLock.FileName), victim);
        var e = Assert.Throws<IOException>(() => Trainer.Run(TinyRun.Request(run)));
        Assert.Contains("symbolic link", e.Message);
        Assert.Equal("precious", File.ReadAllText(victim));
    }

    [Fact]
    public void APlantedConfigLinkMakesTheFolderForeign()
    {
        var victim = Write("victim.yaml", "# source: precious\n");
        var run = Path.Combine(dir, "run");
        Directory.CreateDirectory(run);
        File.CreateSymbolicLink(Path.Combine(run, "config.yaml"), victim);
        var e = Assert.Throws<IOException>(() => Trainer.Run(TinyRun.Request(run)));
        Assert.Contains("is not a Seg run folder", e.Message);
        Assert.Equal("# source: precious\n", File.ReadAllText(victim));
    }

    [Fact]
    public void ResumeRefusesLinksPlantedInTheRunFolder()
    {
        var run = Path.Combine(dir, "run");
        Trainer.Run(TinyRun.Request(run, false, "train.iterations=3", "train.threads=1"));
        foreach (var name in new[] { "metrics.json", "report.md", "report.html", "eval_log.csv" })
        {
            var victim = Write($"victim-{name}", "precious");
            var planted = Path.Combine(run, name);
            File.Delete(planted);
            File.CreateSymbolicLink(planted, victim);
            var e = Assert.Throws<IOException>(() => Trainer.Run(TinyRun.Request(run, true, "train.iterations=4", "train.threads=1")));
            Assert.Contains($"{planted} is a symbolic link", e.Message);
            Assert.Equal("precious", File.ReadAllText(victim));
            File.Delete(planted);
        }
    }

    [LinuxFact]
    public void SigtermFinishesTheStepSavesReleasesTheLockAndExits130()
    {
        var run = Path.Combine(dir, "run");
        var config = Write("tiny.yaml", TinyRun.Yaml);
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "Seg.Train.dll"), "train", "-c", config, "-o", run,
                     "--set", "train.iterations=1000000", "--set", "train.eval_every=0", "--set", "train.checkpoint_every=1000000",
                     "--set", "schedule.warmup_iters=0", "--set", "train.threads=1" })
            psi.ArgumentList.Add(a);
        psi.Environment["OMP_NUM_THREADS"] = "1";
        using var child = Process.Start(psi)!;
        var stdout = child.StandardOutput.ReadToEndAsync();
        var stderr = child.StandardError.ReadToEndAsync();
        try
        {
            // config.yaml is written just before the first step; SIGTERM at any moment after start-up must end the same way.
            var watch = Stopwatch.StartNew();
            while (!File.Exists(Path.Combine(run, "config.yaml")) && !child.HasExited && watch.Elapsed < TimeSpan.FromMinutes(2)) Thread.Sleep(50);
            if (child.HasExited) Assert.Fail($"the run ended before SIGTERM: {stderr.Result}");
            using (var kill = Process.Start("kill", ["-TERM", child.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])) kill.WaitForExit();
            Assert.True(child.WaitForExit(TimeSpan.FromMinutes(2)), "the run did not stop within 2 minutes of SIGTERM");
            Assert.True(child.ExitCode == 130, $"exit {child.ExitCode}: {stderr.Result}");
            Assert.Contains("SIGTERM", stderr.Result);
            Assert.True(CheckpointFile.ReadState(Path.Combine(run, "checkpoints", "last.ckpt")).Iteration >= 1);
            Assert.False(File.Exists(Path.Combine(run, RunLock.FileName)));
        }
        finally
        {
            if (!child.HasExited) child.Kill(entireProcessTree: true);
        }
    }
}

/// <summary><see cref="AtomicFile"/> and <see cref="FileChecks"/> against links, FIFOs and devices (Linux).</summary>
public class AtomicFileTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("seg-atomic-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    string Fifo()
    {
        var path = Path.Combine(dir, "fifo");
        using var p = Process.Start("mkfifo", [path]);
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
        return path;
    }

    [LinuxFact]
    public void KindsAreToldApart()
    {
        var file = Path.Combine(dir, "file");
        File.WriteAllText(file, "x");
        var link = Path.Combine(dir, "link");
        File.CreateSymbolicLink(link, file);
        Assert.Equal(PathKind.File, FileChecks.KindOf(file));
        Assert.Equal(PathKind.Directory, FileChecks.KindOf(dir));
        Assert.Equal(PathKind.SymbolicLink, FileChecks.KindOf(link, followLinks: false));
        Assert.Equal(PathKind.File, FileChecks.KindOf(link));
        Assert.Equal(PathKind.Fifo, FileChecks.KindOf(Fifo()));
        Assert.Equal(PathKind.CharacterDevice, FileChecks.KindOf("/dev/null"));
        Assert.Equal(PathKind.Missing, FileChecks.KindOf(Path.Combine(dir, "none", "deeper")));
    }

    [LinuxFact]
    public void AWriteNeverGoesThroughALinkOrIntoAFifo()
    {
        var victim = Path.Combine(dir, "victim");
        File.WriteAllText(victim, "precious");
        var link = Path.Combine(dir, "link");
        File.CreateSymbolicLink(link, victim);
        Assert.Contains("symbolic link", Assert.Throws<IOException>(() => AtomicFile.WriteAllText(link, "evil")).Message);
        Assert.Equal("precious", File.ReadAllText(victim));
        var fifo = Fifo();
        Assert.Contains("FIFO", Assert.Throws<IOException>(() => AtomicFile.WriteAllText(fifo, "x")).Message);
        Assert.Contains("FIFO", Assert.Throws<IOException>(() => FileChecks.RequireRegularFile(fifo, "--config")).Message);
        Assert.Empty(Directory.GetFiles(dir, "*.tmp"));

        var target = Path.Combine(dir, "out.txt");
        AtomicFile.WriteAllText(target, "one");
        AtomicFile.WriteAllText(target, "two");
        Assert.Equal("two", File.ReadAllText(target));
        Assert.Empty(Directory.GetFiles(dir, "*.tmp"));
    }

    [LinuxTheory]
    [InlineData("/dev/null", "character device")]
    [InlineData("fifo", "FIFO")]
    [InlineData("folder", "directory")]
    [InlineData("link", "symbolic link")]
    public void ExportRefusesAnOutputThatIsNotARegularFile(string output, string kind)
    {
        var path = output switch
        {
            "fifo" => Fifo(),
            "folder" => Directory.CreateDirectory(Path.Combine(dir, "folder")).FullName,
            "link" => File.CreateSymbolicLink(Path.Combine(dir, "link"), Path.Combine(dir, "target.onnx")).FullName,
            _ => output,
        };
        // Refused before the checkpoint is even read (there is none).
        var e = Assert.Throws<IOException>(() => ExportCommand.Run(Path.Combine(dir, "missing.ckpt"), path));
        Assert.Contains(kind, e.Message);
        Assert.Contains("--output", e.Message);
        Assert.False(File.Exists(Path.Combine(dir, "target.onnx")));
    }

    [Fact]
    public void PredictRefusesOutputsThatCollideOrReplaceItsInputs()
    {
        var images = Directory.CreateDirectory(Path.Combine(dir, "images")).FullName;
        string Image(string name)
        {
            var path = Path.Combine(images, name);
            File.WriteAllText(path, "");
            return path;
        }

        var a = Image("a.png");
        var aJpg = Image("a.jpg");
        var e = Assert.Throws<IOException>(() => Predictor.PlanOutputs([aJpg, a], Path.Combine(dir, "out")));
        Assert.Contains("a.jpg and ", e.Message);
        Assert.Contains("a.png would both write", e.Message);

        // --output equal to --input: fine the first time, refused once the outputs are there (they are inputs then).
        var x = Image("x.png");
        Assert.Equal([x], Predictor.PlanOutputs([x], images));
        var xMask = Image("x_mask.png");
        e = Assert.Throws<IOException>(() => Predictor.PlanOutputs([x, xMask], images));
        Assert.Contains("x_mask.png (of ", e.Message);
        Assert.Contains("is itself one of the --input images", e.Message);
        Assert.Equal([x, xMask], Predictor.PlanOutputs([x, xMask], Path.Combine(dir, "elsewhere")));
    }
}

/// <summary>A [Fact] for Linux fixtures (FIFOs, <c>/dev/null</c>, <c>kill</c>); skipped elsewhere.</summary>
public sealed class LinuxFactAttribute : FactAttribute
{
    public LinuxFactAttribute()
    {
        if (!OperatingSystem.IsLinux()) Skip = "needs Linux (FIFOs, devices, signals)";
    }
}

/// <summary>A [Theory] for Linux fixtures; skipped elsewhere.</summary>
public sealed class LinuxTheoryAttribute : TheoryAttribute
{
    public LinuxTheoryAttribute()
    {
        if (!OperatingSystem.IsLinux()) Skip = "needs Linux (FIFOs, devices, signals)";
    }
}
