using System.Diagnostics;
using System.Text.Json.Nodes;
using OpenCvSharp;
using Seg.Core.Losses;
using Seg.Core.Losses.LovaszLosses;
using Seg.Core.Losses.MarginSoftmax;
using Seg.Core.Losses.MetricLosses;
using Seg.Core.Losses.PixelLosses;
using Seg.Core.Metrics;
using Seg.Data;
using Seg.Data.Datasets;
using Seg.Data.Imaging;
using Seg.Tests.Data;
using Seg.Train.Checkpoints;
using Seg.Train.Config;
using Seg.Train.Evaluation;
using Seg.Train.Prediction;
using Seg.Train.Training;
using static TorchSharp.torch;

namespace Seg.Tests.Train;

/// <summary>Issue 20, parts 2 to 5, on the run side: numbers that are right or refused, errors that name the cause.
/// Each test builds the minimal input that showed the fault.</summary>
public class HostileRunTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("seg-hostile-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    string Fifo(string name)
    {
        var path = Path.Combine(dir, name);
        using var p = Process.Start("mkfifo", [path]);
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
        return path;
    }

    [Fact]
    public void AStrideBeyondTheWindowIsRefusedAndTheDefaultStrideFollowsTheWindow()
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse("eval: { mode: slide, window: [32, 32], stride: [33, 32] }", "t.yaml"));
        Assert.Equal("eval.stride", e.KeyPath);
        Assert.Contains("exceeds eval.window [32, 32]", e.Message);
        Assert.Equal([64, 64], ConfigLoader.Parse("eval: { window: [96, 96] }", "t.yaml").Eval.Stride);
        Assert.Equal([341, 341], ConfigLoader.Parse("{}", "t.yaml").Eval.Stride);
        Assert.Throws<ArgumentException>(() => Inference.Slide(null!, zeros(1, 3, 8, 8), 4, 4, 5, 4));
    }

    [Fact]
    public void NonFiniteOutputIsAnErrorNamingTheImageUnlessAllowedThenCounted()
    {
        using var probabilities = full(new long[] { 2, 3, 2, 2 }, 1.0f / 3);
        probabilities[1, 2, 0, 1] = tensor(float.NaN);
        probabilities[1, 0, 1, 1] = tensor(float.PositiveInfinity);
        var e = Assert.Throws<NonFiniteOutputException>(() => Evaluator.CheckFinite(probabilities, ["a", "b"], allow: false));
        Assert.Equal("b", e.ImageId);
        Assert.Equal(2, e.Pixels);
        Assert.Contains("2 of 4 pixel(s) of image 'b'", e.Message);
        Assert.Equal(2, Evaluator.CheckFinite(probabilities, ["a", "b"], allow: true));
    }

    [Fact]
    public void LabelImagesAre16BitWhenTheClassesNeedIt()
    {
        using var labels = new Mat(1, 3, MatType.CV_32SC1);
        labels.SetArray(new[] { 0, 255, 299 });
        using (var wide = Predictor.LabelPicture(labels, 300, "x_labels.png"))
        {
            Assert.Equal(MatType.CV_16UC1, wide.Type());
            Assert.Equal(299, wide.At<ushort>(0, 2));
        }
        using var narrow = new Mat(1, 2, MatType.CV_32SC1);
        narrow.SetArray(new[] { 0, 3 });
        using (var grey = Predictor.LabelPicture(narrow, 4, "y_labels.png")) Assert.Equal(MatType.CV_8UC1, grey.Type());
        narrow.SetArray(new[] { 0, -5 });   // an int64 label that wrapped
        Assert.Contains("label -5", Assert.Throws<InvalidDataException>(() => Predictor.LabelPicture(narrow, 4, "y_labels.png")).Message);
    }

    [Fact]
    public void OneRuleForAnIgnoreIndexThatIsAClassId()
    {
        const string expected = "the ignore index 1 is a class id of the 4 classes [0, 3]";
        Assert.Contains(expected, Assert.Throws<ArgumentException>(() => new ConfusionMatrix(4, 1)).Message);
        using var logits = zeros(1, 4, 2, 2);
        using var labels = zeros(new long[] { 1, 2, 2 }, ScalarType.Int64);
        Assert.Contains(expected, Assert.Throws<ArgumentException>(() => new SoftmaxCrossEntropyLoss(ignoreIndex: 1).forward(logits, labels)).Message);
        Assert.Contains(expected, Assert.Throws<ArgumentException>(() => new LovaszSoftmaxLoss(ignoreIndex: 1).forward(logits, labels)).Message);
        var e = Assert.Throws<ConfigException>(() => Trainer.Run(TinyRun.Request(Path.Combine(dir, "run"), false, "data.ignore_index=1")));
        Assert.Equal("data.ignore_index", e.KeyPath);
        Assert.Contains(expected, e.Message);
    }

    // Each threw libtorch's ExternalException (or ran out of memory) before.
    [Fact]
    public void LossApiArgumentsAreNamed()
    {
        using var noRows = zeros(1, 3, 0, 4);
        using var noRowLabels = zeros(new long[] { 1, 0, 4 }, ScalarType.Int64);
        Assert.Equal("logits", Assert.Throws<ArgumentException>(() => MetricLoss.Jaccard(noRows, noRowLabels, perClass: 1)).ParamName);

        using var matrix = new ConfusionMatrix(3);
        using var none = zeros(new long[] { 0, 4, 4 }, ScalarType.Int64);
        matrix.Update(none, none);   // an empty batch counts nothing
        Assert.Equal(0L, matrix.ToArray().Cast<long>().Sum());
        Assert.Equal("numClasses", Assert.Throws<ArgumentOutOfRangeException>(() => new ConfusionMatrix(1 << 20)).ParamName);

        using var logits = zeros(1, 3, 2, 2);
        using var elsewhere = zeros(new long[] { 1, 2, 2 }, ScalarType.Int64, device: new Device(TorchSharp.DeviceType.META));
        Assert.Equal("labels", Assert.Throws<ArgumentException>(() => new SoftmaxCrossEntropyLoss().forward(logits, elsewhere)).ParamName);

        using var labels = zeros(new long[] { 1, 2, 2 }, ScalarType.Int64);
        Assert.Equal("numClasses", Assert.Throws<ArgumentOutOfRangeException>(() => SoftLabels.BoundarySmoothing(labels, 1L << 40)).ParamName);
        Assert.Equal("classes", Assert.Throws<ArgumentOutOfRangeException>(() => new CenterLoss(4, 1L << 40)).ParamName);
        Assert.Equal("features", Assert.Throws<ArgumentOutOfRangeException>(() => new ArcFaceLoss(1L << 40, 4)).ParamName);
    }

    [Theory]
    [InlineData("data: { size: 100000 }", "data.size", "8192")]
    [InlineData("data: { crop_size: [64, 100000] }", "data.crop_size", "above the maximum 8192")]
    [InlineData("model: { unet_base_width: 1000000 }", "model.unet_base_width", "1024")]
    [InlineData("data: { train_count: 2147483647 }", "data.train_count", "10000000")]
    [InlineData("data: { train_count: 4, batch_size: 8 }", "data.batch_size", "exceeds data.train_count (4)")]
    public void HugeOrInconsistentSizesAreConfigErrorsNamingTheKey(string yaml, string key, string message)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, "t.yaml"));
        Assert.Equal(key, e.KeyPath);
        Assert.Contains(message, e.Message);
        Assert.DoesNotContain("drop_last", e.Message);
    }

    [Fact]
    public void AHugeStaticExportSizeIsRefusedBeforeTheModelRuns()
    {
        var e = Assert.Throws<ArgumentException>(() => Seg.Train.Export.ExportCommand.Run(Path.Combine(dir, "none.ckpt"), Path.Combine(dir, "m.onnx"),
            staticSize: (100000, 100000)));
        Assert.Contains("--static 100000 100000", e.Message);
    }

    [Fact]
    public void EmptyAndFifoConfigFilesAreRefused()
    {
        var empty = Path.Combine(dir, "empty.yaml");
        File.WriteAllText(empty, "# nothing but a comment\n");
        Assert.Contains("is empty", Assert.Throws<ConfigException>(() => ConfigLoader.Load(empty)).Message);
        if (!OperatingSystem.IsLinux()) return;
        var fifo = Fifo("config.yaml");
        Assert.Contains("FIFO", Assert.Throws<ConfigException>(() => ConfigLoader.Load(fifo)).Message);   // returns: no writer needed
        var checkpoint = Fifo("last.ckpt");
        Assert.Contains("FIFO", Assert.Throws<IOException>(() => CheckpointFile.ReadState(checkpoint)).Message);
        var mask = Fifo("mask.png");
        Assert.Contains("FIFO", Assert.Throws<BadSampleException>(() => SampleFiles.ReadMask(mask, 255)).Message);
    }

    [Fact]
    public void ANonUtf8FileNameIsNamedAsSuch()
    {
        if (!OperatingSystem.IsLinux()) return;
        using (var p = Process.Start("sh", ["-c", "printf x > \"$1/$(printf 'a\\377.png')\"", "sh", dir])) p.WaitForExit();
        var listed = Assert.Single(Directory.GetFiles(dir, "a*.png"));
        try
        {
            var e = Assert.Throws<BadSampleException>(() => SampleFiles.ReadImage(listed));
            Assert.Contains("not valid UTF-8", e.Message);
        }
        finally
        {
            // .NET cannot name the file either: the shell removes it.
            using var p = Process.Start("sh", ["-c", "rm -f \"$1\"/a*.png", "sh", dir]);
            p.WaitForExit();
        }
    }

    [Fact]
    public void TheFolderDatasetBoundsTheClassesItInfersAndNamesTheMask()
    {
        DataFixtures.WriteFolder(dir, 2, 3);
        using (var mask = new Mat(40, 50, MatType.CV_16UC1, Scalar.All(1)))
        {
            mask.Set(3, 4, (ushort)60000);
            Cv2.ImWrite(Path.Combine(dir, "masks", "img001.png"), mask);
        }
        var e = Assert.Throws<BadSampleException>(() => DatasetFactory.Create(new DatasetOptions { Type = "folder", Root = dir }));
        Assert.Contains("img001.png", e.Message);
        Assert.Contains("label 60000 at (x=4, y=3)", e.Message);
        Assert.Contains($"{FolderDataset.MaxInferredClasses}", e.Message);
    }

    [Fact]
    public void ASkippedSampleIsReadOnceAndCounted()
    {
        DataFixtures.WriteFolder(dir, 3, 3);
        File.WriteAllBytes(Path.Combine(dir, "images", "img001.png"), [1, 2, 3]);
        var ds = (FolderDataset)DatasetFactory.Create(new DatasetOptions { Type = "folder", Root = dir, NumClasses = 3, OnBadSample = BadSampleMode.Skip });
        for (var epoch = 0; epoch < 3; epoch++)
            using (var s = ds.Get(1)) Assert.Equal("img002", s.Id);
        Assert.Equal(1, ds.BadSamples.Count);
        Assert.Equal(1, ds.BadSamples.Events);   // remembered: not decoded again in later epochs
    }

    [Fact]
    public void TheFolderDatasetAndPredictShareOneListOfExtensions()
    {
        Assert.Contains(".webp", SampleFiles.ImageExtensions);
        Assert.Same(SampleFiles.ImageExtensions, ImageFilesDataset.Extensions);
    }
}

/// <summary>Runs of the tiny recipe that check what the run folder says about itself.</summary>
[Collection("Trainer")]
public class RunReportTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("seg-runreport-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void RunConfigHoldsTheEffectiveConfigSoEvalBuildsTheSameModel()
    {
        var run = Path.Combine(dir, "run");
        Trainer.Run(TinyRun.Request(run, false, "model.unet_base_width=6", "train.iterations=2", "train.threads=1"));
        var written = Path.Combine(run, "config.yaml");
        var config = ConfigLoader.Load(written);
        Assert.Equal(6, config.Model.UnetBaseWidth);
        Assert.Equal(2, config.Train.Iterations);
        // Strict load: the checkpoint's tensors fit the model that RUN/config.yaml builds.
        var (result, _) = EvalCommand.Run(written, [], Path.Combine(run, "checkpoints", "last.ckpt"), Path.Combine(dir, "eval"));
        var trained = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "metrics.json")))!;
        Assert.Equal((double)trained["mIoU"]!, result.Metrics.MeanIoU, 12);
    }

    [Fact]
    public void AnOutputThroughAMissingFolderIsOneFolder()
    {
        var outcome = Trainer.Run(TinyRun.Request(Path.Combine(dir, "a", "missing", "..", "run"), false, "train.iterations=1", "train.threads=1"));
        Assert.Equal(TrainStatus.Completed, outcome.Status);
        Assert.True(File.Exists(Path.Combine(dir, "a", "run", "plots", "samples.png")));
    }

    [Fact]
    public void EvalRefusesAnOutputFolderWithReportsItDidNotWrite()
    {
        var project = Directory.CreateDirectory(Path.Combine(dir, "project")).FullName;
        File.WriteAllText(Path.Combine(project, "report.md"), "the user's report");
        var e = Assert.Throws<IOException>(() => RunFolder.CheckEvalOutput(new RunPaths(project)));
        Assert.Contains("holds report.md", e.Message);
        File.WriteAllText(Path.Combine(project, "metrics.json"), """{ "mIoU": 0.5, "classes": [] }""");
        RunFolder.CheckEvalOutput(new RunPaths(project));   // beside Seg's metrics.json: an earlier eval's report
        RunFolder.CheckEvalOutput(new RunPaths(Path.Combine(dir, "new")));
        Assert.Equal("the user's report", File.ReadAllText(Path.Combine(project, "report.md")));
    }

    [Fact]
    public void SkippedSamplesAreCountedInMetricsAndReport()
    {
        var data = Path.Combine(dir, "data");
        DataFixtures.WriteFolder(data, 4, 3, 32, 32);
        File.WriteAllBytes(Path.Combine(data, "images", "img002.png"), [1, 2, 3]);
        var run = Path.Combine(dir, "run");
        Trainer.Run(TinyRun.Request(run, false, "data.type=folder", $"data.root={data}", "data.num_classes=3", "data.on_bad_sample=skip",
            "data.train_count=null", "data.val_count=null", "train.iterations=2", "train.threads=1"));
        var metrics = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "metrics.json")))!;
        Assert.Equal(2, (int)metrics["skipped_samples"]!);   // the same bad file in the train and the val dataset
        Assert.Contains("img002.png", metrics["skipped_files"]![0]!.ToString());
        Assert.Contains("bad samples skipped", File.ReadAllText(Path.Combine(run, "report.md")));
    }
}

/// <summary>A read-only mount and a full disk were reported as "in use by another training run" (issue 20 part 4).</summary>
public class LockFileSystemErrorTests
{
    [TmpfsFact]
    public void AReadOnlyOrFullFileSystemIsNamedAsSuch()
    {
        using (var disk = new Tmpfs(1 << 20))
        {
            disk.RemountReadOnly();
            var e = Assert.Throws<IOException>(() => RunLock.Acquire(disk.Path));
            Assert.Contains("read-only", e.Message);
            Assert.DoesNotContain("in use", e.Message);
        }
        using (var disk = new Tmpfs(64 << 10))
        {
            Tmpfs.Fill(Path.Combine(disk.Path, "filler"), leave: 0);
            var e = Assert.Throws<IOException>(() => RunLock.Acquire(disk.Path));
            Assert.Contains("no space left", e.Message);
            Assert.DoesNotContain("in use", e.Message);
        }
    }
}
