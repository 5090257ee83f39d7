using System.Text.Json.Nodes;
using Seg.Train.Checkpoints;
using Seg.Train.Config;
using Seg.Train.Evaluation;
using Seg.Train.Prediction;
using Seg.Train.Training;

namespace Seg.Tests.Train;

// Trainer tests share the process-wide torch generator and Console: run them one after another.
[Collection("Trainer")]
public class TrainerTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("seg-train-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void RunWritesTheRunDirectoryContract()
    {
        var output = Path.Combine(dir, "run");
        var outcome = Trainer.Run(TinyRun.Request(output));
        Assert.Equal(TrainStatus.Completed, outcome.Status);
        foreach (var file in new[] { "checkpoints/last.ckpt", "checkpoints/best.ckpt", "train_log.csv", "metrics.json", "report.md", "report.html",
                     "plots/loss.png", "plots/miou.png", "plots/class_iou.png", "plots/confusion.png", "plots/samples.png" })
            Assert.True(File.Exists(Path.Combine(output, file)), $"missing {file}");
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(output, "tensorboard")));

        var lines = File.ReadAllLines(Path.Combine(output, "train_log.csv"));
        Assert.Equal("iteration,loss,cross_entropy,lovasz_softmax,lr", lines[0]);
        Assert.Equal(7, lines.Length);
        Assert.Equal("", lines[3].Split(',')[3]);     // iteration 3 of 6: Lovász not yet on (starts at 50 %)
        Assert.NotEqual("", lines[4].Split(',')[3]);  // iteration 4: on

        var metrics = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "metrics.json")))!;
        foreach (var key in new[] { "mIoU", "aAcc", "mAcc", "mDice", "image_mIoU" })
            Assert.InRange((double)metrics[key]!, 0.0, 1.0);
        Assert.Equal(6, (long)metrics["iterations"]!);
        Assert.Equal(4, metrics["classes"]!.AsArray().Count);
        Assert.Contains("<img", File.ReadAllText(Path.Combine(output, "report.html")));
        Assert.Equal(6, CheckpointFile.ReadState(Path.Combine(output, "checkpoints", "last.ckpt")).Iteration);
    }

    [Fact]
    public void ResumeAfterInterruptIsBitIdenticalToUninterruptedRun()
    {
        var straight = Path.Combine(dir, "straight");
        Trainer.Run(TinyRun.Request(straight));

        var resumed = Path.Combine(dir, "resumed");
        using (var stop = new CancellationTokenSource())
        {
            stop.Cancel(); // as if Ctrl+C came during the first step
            var first = Trainer.Run(TinyRun.Request(resumed), stop.Token);
            Assert.Equal(TrainStatus.Interrupted, first.Status);
            Assert.Equal(1, CheckpointFile.ReadState(Path.Combine(resumed, "checkpoints", "last.ckpt")).Iteration);
        }
        // A stale row after the checkpoint, as a killed run leaves behind: resume must drop it.
        File.AppendAllLines(Path.Combine(resumed, "train_log.csv"), ["2,9,9,,9"]);
        var second = Trainer.Run(TinyRun.Request(resumed, resume: true));
        Assert.Equal(TrainStatus.Completed, second.Status);

        Assert.Equal(File.ReadAllText(Path.Combine(straight, "train_log.csv")), File.ReadAllText(Path.Combine(resumed, "train_log.csv")));
        Assert.Equal(File.ReadAllText(Path.Combine(straight, "metrics.json")), File.ReadAllText(Path.Combine(resumed, "metrics.json")));
        Assert.Equal(File.ReadAllText(Path.Combine(straight, "eval_log.csv")), File.ReadAllText(Path.Combine(resumed, "eval_log.csv")));
    }

    [Fact]
    public void NonFiniteLossStopsNamingIterationAndTermAndKeepsLastGoodCheckpoint()
    {
        var output = Path.Combine(dir, "nan");
        Trainer.Run(TinyRun.Request(output, false, "train.iterations=3"));
        // Resume with a normalisation that divides by ~0: the inputs become infinite, so step 4's loss is NaN.
        var e = Assert.Throws<TrainingDivergedException>(() => Trainer.Run(TinyRun.Request(output, true,
            "train.iterations=6", "data.augment.2.std=[1e-45, 1e-45, 1e-45]")));
        Assert.Equal(4, e.Iteration);
        Assert.Equal("cross_entropy", e.Term);
        Assert.Contains("iteration 4", e.Message);
        Assert.Equal(3, CheckpointFile.ReadState(Path.Combine(output, "checkpoints", "last.ckpt")).Iteration);
    }

    [Fact]
    public void BadConfigFailsBeforeTrainingStarts()
    {
        var output = Path.Combine(dir, "bad");
        var e = Assert.Throws<ConfigException>(() => Trainer.Run(TinyRun.Request(output, false, "model.name=unett")));
        Assert.Equal("model.name", e.KeyPath);
        Assert.Contains("'unet'", e.Message);
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public void BadTransformArgumentNamesItsPosition()
    {
        var e = Assert.Throws<ConfigException>(() => Trainer.Run(TinyRun.Request(Path.Combine(dir, "bad"), false, "data.augment.1.degres=5")));
        Assert.Equal("data.augment[1]", e.KeyPath);
        Assert.Contains("degres", e.Message);
    }

    [Fact]
    public void EvalOfTheFinalCheckpointReproducesTrainingMetricsAndPredictWritesMasks()
    {
        var output = Path.Combine(dir, "run");
        Trainer.Run(TinyRun.Request(output));
        var configPath = Path.Combine(dir, "tiny.yaml");
        File.WriteAllText(configPath, TinyRun.Yaml);
        var (result, paths) = EvalCommand.Run(configPath, [], Path.Combine(output, "checkpoints", "last.ckpt"), Path.Combine(dir, "eval"));
        var trained = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "metrics.json")))!;
        Assert.Equal((double)trained["mIoU"]!, result.Metrics.MeanIoU, 12);
        Assert.True(File.Exists(paths.ReportHtml));

        // predict: write one validation-sized image and segment it with the checkpoint alone.
        var images = Path.Combine(dir, "images");
        Directory.CreateDirectory(images);
        using (var img = new OpenCvSharp.Mat(40, 48, OpenCvSharp.MatType.CV_8UC3, new OpenCvSharp.Scalar(120, 80, 40)))
            OpenCvSharp.Cv2.ImWrite(Path.Combine(images, "a.png"), img);
        var n = Predictor.Run(Path.Combine(output, "checkpoints", "best.ckpt"), images, Path.Combine(dir, "pred"));
        Assert.Equal(1, n);
        foreach (var suffix in new[] { "_mask.png", "_overlay.png", "_labels.png" })
        {
            using var m = OpenCvSharp.Cv2.ImRead(Path.Combine(dir, "pred", "a" + suffix), OpenCvSharp.ImreadModes.Unchanged);
            Assert.Equal((40, 48), (m.Rows, m.Cols));
        }
    }
}

[Collection("Trainer")]
public class SoftmaxFamilyWiringTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("seg-cos-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    static readonly string[] CosineRecipe =
    [
        "model.head={ type: cosine, margin: arcface, scale: 16, margin_value: 0.2, embedding_dim: 8 }",
        "loss=[{ type: margin_cross_entropy }, { type: center, weight: 0.1, max_pixels: 256 }]",
        "train.iterations=4", "train.eval_every=0", "train.checkpoint_every=2",
    ];

    [Fact]
    public void CosineHeadWithMarginAndCenterLossTrainsAndResumesBitIdentically()
    {
        var straight = Path.Combine(dir, "straight");
        Trainer.Run(TinyRun.Request(straight, false, CosineRecipe));
        Assert.StartsWith("iteration,loss,margin_cross_entropy,center,lr", File.ReadAllText(Path.Combine(straight, "train_log.csv")));

        var resumed = Path.Combine(dir, "resumed");
        Trainer.Run(TinyRun.Request(resumed, false, [.. CosineRecipe, "train.iterations=2"]));
        Trainer.Run(TinyRun.Request(resumed, true, CosineRecipe));
        Assert.Equal(File.ReadAllLines(Path.Combine(straight, "train_log.csv"))[3..], File.ReadAllLines(Path.Combine(resumed, "train_log.csv"))[3..]);
    }

    [Fact]
    public void CenterLossWithoutCosineHeadIsAConfigError()
    {
        var e = Assert.Throws<ConfigException>(() => Trainer.Run(TinyRun.Request(Path.Combine(dir, "bad"), false,
            "loss=[{ type: cross_entropy }, { type: center }]")));
        Assert.Equal("loss[1]", e.KeyPath);
        Assert.Contains("model.head.type: cosine", e.Message);
    }
}
