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

        // What the run was, from TinyRun's config (and where its checkpoint is), in metrics.json and both reports.
        var run = metrics["run"]!;
        Assert.StartsWith("shapes, 8 train / 4 val images", (string)run["dataset"]!);
        Assert.StartsWith("unet (depth 1, width 4", (string)run["model"]!);
        Assert.Equal(["cross_entropy × 1", "lovasz_softmax × 1, on from 50 % to 100 % of training"], run["loss"]!.AsArray().Select(t => (string)t!));
        Assert.StartsWith("sgd (momentum 0.9", (string)run["optimizer"]!);
        Assert.Equal(0.05, (double)run["lr"]!);
        Assert.Equal(3, (int)run["seed"]!);
        Assert.StartsWith("cpu, ", (string)run["device"]!);
        Assert.Equal("fp32", (string)run["precision"]!);
        Assert.False(string.IsNullOrEmpty((string)run["seg_version"]!));
        Assert.Equal(Path.GetFullPath(Path.Combine(output, "checkpoints", "last.ckpt")), (string)run["checkpoint"]!);
        Assert.Empty(run["warnings"]!.AsArray());
        var md = File.ReadAllText(Path.Combine(output, "report.md"));
        foreach (var row in new[] { "| seed | 3 |", "| precision | fp32 |", "| learning rate | 0.05, poly (power 0.9), 1 warm-up iterations |" })
            Assert.Contains(row, md);
        // The worst images are drawn, not only listed, and the confusion matrix is written out in numbers.
        Assert.Contains("![Worst images: image / ground truth / prediction](plots/worst.png)", md);
        Assert.True(File.Exists(Path.Combine(output, "plots", "worst.png")));
        Assert.Contains("## Confusion matrix (pixels", md);
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
        // The scores are bit-identical; the run description differs in date and checkpoint path only.
        Assert.Equal(Scores(straight), Scores(resumed));
        Assert.Equal(File.ReadAllText(Path.Combine(straight, "eval_log.csv")), File.ReadAllText(Path.Combine(resumed, "eval_log.csv")));
    }

    [Theory]
    [InlineData("sgd")]
    [InlineData("adamw")]
    public void A_run_saved_by_TorchSharps_optimizer_resumes_on_flat_buffers_bit_identically(string optimizer)
    {
        // The flat optimizers do TorchSharp's arithmetic on other storage, and store their state as TorchSharp's do.
        var type = $"optimizer.type={optimizer}";
        var straight = Path.Combine(dir, "straight");
        Trainer.Run(TinyRun.Request(straight, false, type));
        var switched = Path.Combine(dir, "switched");
        using (var stop = new CancellationTokenSource())
        {
            stop.Cancel();
            Assert.Equal(TrainStatus.Interrupted, Trainer.Run(TinyRun.Request(switched, false, type, "optimizer.flat=false"), stop.Token).Status);
        }
        Assert.Equal(TrainStatus.Completed, Trainer.Run(TinyRun.Request(switched, true, type)).Status);
        Assert.Equal(File.ReadAllText(Path.Combine(straight, "train_log.csv")), File.ReadAllText(Path.Combine(switched, "train_log.csv")));
        Assert.Equal(Scores(straight), Scores(switched));
    }

    static string Scores(string run)
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "metrics.json")))!.AsObject();
        json.Remove("run");
        return json.ToJsonString();
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
    public void FolderDatasetWithoutSplitFoldersIsWarnedAboutInTheReport()
    {
        var data = Path.Combine(dir, "data");
        Seg.Tests.Data.DataFixtures.WriteFolder(data, count: 2, classes: 3, h: 32, w: 32);
        var output = Path.Combine(dir, "folder");
        Trainer.Run(TinyRun.Request(output, false, "data.type=folder", $"data.root={data}", "data.augment=[{type: normalize}]",
            "train.iterations=1", "train.eval_every=0", "schedule.warmup_iters=0"));
        var warnings = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "metrics.json")))!["run"]!["warnings"]!.AsArray();
        Assert.StartsWith("2 of the 2 validation images are also training images", (string)Assert.Single(warnings)!);
        Assert.Contains("> **Warning:** 2 of the 2 validation images", File.ReadAllText(Path.Combine(output, "report.md")));
        Assert.Contains("<p class=\"warning\">", File.ReadAllText(Path.Combine(output, "report.html")));
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
        // Without --config, eval takes the config the checkpoint was trained with, as predict and export do.
        var (own, _) = EvalCommand.Run(null, [], Path.Combine(output, "checkpoints", "last.ckpt"), Path.Combine(dir, "eval-own"));
        Assert.Equal(result.Metrics.MeanIoU, own.Metrics.MeanIoU, 12);
        var weights = Path.Combine(dir, "weights.pth");
        File.WriteAllBytes(weights, [0]);
        Assert.Contains("--config", Assert.Throws<ArgumentException>(() => EvalCommand.Run(null, [], weights, null)).Message);

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
