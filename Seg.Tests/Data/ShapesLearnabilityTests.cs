using Seg.Core;
using Seg.Data;
using Seg.Data.Transforms;
using Seg.Models;
using Seg.Models.Segmentation;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Tests.Data;

/// <summary>
/// Opt-in: the default dataset must be learnable quickly. A small UNet (depth 3, width 16) trained with plain
/// cross-entropy on 64×64 shapes (batch 8, 2500 Adam steps, lr 1e-3, 1 torch thread) for a fixed number of steps must reach val mIoU ≥ 0.85 (IoU per class from a
/// confusion matrix counted in plain C#, averaged over the 4 classes).
/// </summary>
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
        model.eval();
        var confusion = new long[4, 4];
        using (no_grad())
            foreach (var b in valLoader.Epoch())
                using (b)
                {
                    using var scope = NewDisposeScope();
                    var pred = model.forward(b.Images).argmax(1).data<long>().ToArray();
                    var truth = b.Labels.data<long>().ToArray();
                    for (int i = 0; i < pred.Length; i++) confusion[truth[i], pred[i]]++;
                }
        double miou = Enumerable.Range(0, 4).Average(c =>
        {
            long tp = confusion[c, c], fp = 0, fn = 0;
            for (int k = 0; k < 4; k++) if (k != c) { fp += confusion[k, c]; fn += confusion[c, k]; }
            return tp / (double)(tp + fp + fn);
        });
        for (int r = 0; r < 4; r++) Progress(string.Join(" ", Enumerable.Range(0, 4).Select(c => confusion[r, c].ToString().PadLeft(8))));
        output.WriteLine($"val mIoU {miou:F3} after {steps} steps, {clock.Elapsed.TotalSeconds:F0} s");
        Progress($"val mIoU {miou:F4} after {steps} steps, {clock.Elapsed.TotalSeconds:F0} s");
        Assert.True(miou >= 0.85, $"val mIoU {miou:F3} after {steps} steps");
    }
}
