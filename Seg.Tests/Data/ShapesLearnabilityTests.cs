using System.Text.Json.Nodes;
using Seg.Core;
using Seg.Data;
using Seg.Data.Transforms;
using Seg.Models;
using Seg.Models.Segmentation;
using Seg.Train.Checkpoints;
using Seg.Train.Config;
using Seg.Train.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Tests.Data;

/// <summary>
/// Opt-in: the default dataset must be learnable quickly. (1) The quickstart itself: the embedded
/// <c>configs/default.yaml</c>, trained exactly as <c>dotnet run --project Seg.Train</c> trains it, must reach val
/// mIoU ≥ 0.90. (2) A small UNet (depth 3, width 16) trained with plain cross-entropy on 64×64 shapes (batch 8,
/// 2500 Adam steps, lr 1e-3, 1 torch thread) must reach val mIoU ≥ 0.85. Both score with IoU per class from a
/// confusion matrix counted in plain C#, averaged over the 4 classes.
/// </summary>
[Collection("Trainer")]   // Trainer.Run shares the process-wide torch generator and Console with the trainer tests
public class ShapesLearnabilityTests
{
    readonly Xunit.Abstractions.ITestOutputHelper output;

    public ShapesLearnabilityTests(Xunit.Abstractions.ITestOutputHelper output)
    {
        this.output = output;
        SegRuntime.Initialize();
    }

    // Progress for long runs: SEG_PROGRESS=<file> appends a line every 50 steps.
    static void Progress(string line)
    {
        if (Environment.GetEnvironmentVariable("SEG_PROGRESS") is { Length: > 0 } file) File.AppendAllText(file, line + Environment.NewLine);
    }

    [Fact]
    [Trait("Category", "Heavy")]
    public void DefaultConfigReachesValMiou090()
    {
        var dir = Directory.CreateTempSubdirectory("seg-default-").FullName;
        try
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var outcome = Trainer.Run(new TrainRequest(ConfigLoader.DefaultYaml(), "embedded default config", [], dir, false));
            Assert.Equal(TrainStatus.Completed, outcome.Status);

            // Score the final weights independently of the trainer's evaluator: rebuild the model from last.ckpt,
            // predict the val split of the config it carries, count the confusion matrix here.
            var trained = CheckpointModel.Load(Path.Combine(dir, "checkpoints", "last.ckpt"));
            var config = trained.Config;
            var val = DatasetFactory.Create(new DatasetOptions
                { Type = config.Data.Type, Size = config.Data.Size, Split = config.Data.ValSplit, Count = config.Data.ValCount, Seed = config.Train.Seed });
            using var loader = new SegmentationLoader(val, trained.ValPipeline(), new LoaderOptions { BatchSize = config.Eval.BatchSize, Workers = 1 }, CPU);
            var miou = ValMeanIoU(trained.Model, loader, val.NumClasses);
            var reported = (double)JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "metrics.json")))!["mIoU"]!;
            output.WriteLine($"default config: val mIoU {miou:F4} (trainer reported {reported:F4}) after {config.Train.Iterations} iterations, {clock.Elapsed.TotalSeconds:F0} s");
            Progress($"default config: val mIoU {miou:F4} (reported {reported:F4}), {clock.Elapsed.TotalSeconds:F0} s");
            Assert.Equal(miou, reported, 1e-6);
            Assert.True(miou >= 0.90, $"default config: val mIoU {miou:F3} after {config.Train.Iterations} iterations");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    // mIoU over all classes from a confusion matrix counted in plain C# (rows: truth, columns: prediction).
    static double ValMeanIoU(nn.Module<Tensor, Tensor> model, SegmentationLoader loader, int classes)
    {
        model.eval();
        var confusion = new long[classes, classes];
        using (no_grad())
            foreach (var b in loader.Epoch())
                using (b)
                {
                    using var scope = NewDisposeScope();
                    var pred = model.forward(b.Images).argmax(1).data<long>().ToArray();
                    var truth = b.Labels.data<long>().ToArray();
                    for (int i = 0; i < pred.Length; i++) confusion[truth[i], pred[i]]++;
                }
        for (int r = 0; r < classes; r++) Progress(string.Join(" ", Enumerable.Range(0, classes).Select(c => confusion[r, c].ToString().PadLeft(8))));
        return Enumerable.Range(0, classes).Average(c =>
        {
            long tp = confusion[c, c], fp = 0, fn = 0;
            for (int k = 0; k < classes; k++) if (k != c) { fp += confusion[k, c]; fn += confusion[c, k]; }
            return tp / (double)(tp + fp + fn);
        });
    }

    [Fact]
    [Trait("Category", "Heavy")]
    public void SmallUNetReachesValMiou085()
    {
        torch.set_num_threads(1); // OpenMP barriers stall badly on a shared, oversubscribed machine
        torch.manual_seed(0);
        const int size = 64, steps = 2500, batch = 8;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        int step = 0;
        var train = DatasetFactory.Create(new DatasetOptions { Size = size, Count = 2000 });
        var val = DatasetFactory.Create(new DatasetOptions { Size = size, Split = "val", Count = 100 });
        var pipeline = new TransformPipeline([new HorizontalFlip(), new Normalize()]);
        using var trainLoader = new SegmentationLoader(train, pipeline, new LoaderOptions { BatchSize = batch, Workers = 1 }, CPU);
        using var valLoader = new SegmentationLoader(val, new TransformPipeline([new Normalize()]), new LoaderOptions { BatchSize = 25, Workers = 1 }, CPU);
        var model = new UNet(4, new ModelOptions { UnetDepth = 3, UnetBaseWidth = 16 });
        using var optimizer = optim.Adam(model.parameters(), lr: 1e-3);
        model.train();
        foreach (var b in trainLoader.Iterate().Take(steps))
        {
            using var scope = NewDisposeScope();
            using (b)
            {
                optimizer.zero_grad();
                var loss = nn.functional.cross_entropy(model.forward(b.Images), b.Labels, ignore_index: 255);
                loss.backward();
                optimizer.step();
                if (++step % 50 == 0) Progress($"step {step} loss {loss.item<float>():F4} {clock.Elapsed.TotalSeconds:F0}s");
            }
        }
        double miou = ValMeanIoU(model, valLoader, 4);
        output.WriteLine($"val mIoU {miou:F3} after {steps} steps, {clock.Elapsed.TotalSeconds:F0} s");
        Progress($"val mIoU {miou:F4} after {steps} steps, {clock.Elapsed.TotalSeconds:F0} s");
        Assert.True(miou >= 0.85, $"val mIoU {miou:F3} after {steps} steps");
    }
}
