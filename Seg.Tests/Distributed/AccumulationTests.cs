using System.Globalization;
using OpenCvSharp;
using Seg.Core;
using Seg.Data.Datasets;
using Seg.Train.Training;

namespace Seg.Tests.Distributed;

/// <summary>
/// <c>train.accumulate: k</c> sums the gradients of k micro-batches before each optimizer step, so that k × batch
/// B trains as one batch of k·B. Batch norm would break the equality (its statistics are per micro-batch), and all
/// of Seg's models have it; so the dataset is 16 copies of one image, whose batch statistics are the same in a
/// micro-batch of 4 and a batch of 8. What differs between micro-batches is then only how gradients, the loss, the
/// step count and the schedule are combined, which is what this checks: each step's loss depends on the weights
/// all earlier steps produced. (That a step takes the same samples is checked by <see cref="ShardingTests"/>.)
/// </summary>
[Collection("Trainer")]
public class AccumulationTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("seg-accumulate-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void Two_micro_batches_of_4_train_as_one_batch_of_8()
    {
        SegRuntime.Initialize();
        using (var sample = new ShapesDataset(1, size: 32, seed: 5).Get(0))
        {
            Directory.CreateDirectory(Path.Combine(dir, "data", "images"));
            Directory.CreateDirectory(Path.Combine(dir, "data", "masks"));
            for (var i = 0; i < 16; i++)
            {
                Cv2.ImWrite(Path.Combine(dir, "data", "images", $"s{i:D2}.png"), sample.Image);
                Cv2.ImWrite(Path.Combine(dir, "data", "masks", $"s{i:D2}.png"), sample.Mask);
            }
        }
        var yaml = $$"""
            name: accumulate
            model: { name: unet, unet_depth: 1, unet_base_width: 4 }
            data: { type: folder, root: '{{Path.Combine(dir, "data")}}', num_classes: 4, batch_size: 8, workers: 0, augment: [ { type: normalize } ] }
            loss: [ { type: cross_entropy }, { type: lovasz_softmax, per_image: true } ]
            optimizer: { type: sgd, lr: 0.05, momentum: 0.9 }
            schedule: { type: poly, warmup_iters: 2 }
            train: { iterations: 8, eval_every: 0, checkpoint_every: 8, seed: 1, device: cpu, threads: 1 }
            eval: { batch_size: 4, samples: 0 }
            """;
        var big = Trainer.Run(new TrainRequest(yaml, "accumulate.yaml", [], Path.Combine(dir, "big"), false));
        var small = Trainer.Run(new TrainRequest(yaml, "accumulate.yaml", ["data.batch_size=4", "train.accumulate=2"], Path.Combine(dir, "small"), false));

        var (expected, actual) = (Rows(big.Paths.TrainLog), Rows(small.Paths.TrainLog));
        Assert.Equal(8, actual.Count);   // iterations count optimizer steps, not micro-batches
        for (var i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i].Lr, actual[i].Lr);   // the schedule counts optimizer steps too
            Assert.True(Math.Abs(actual[i].Loss - expected[i].Loss) <= 1e-4 * expected[i].Loss,
                $"step {i + 1}: loss {actual[i].Loss} with 2 x 4, {expected[i].Loss} with 8");
        }
        Assert.True(expected[^1].Loss < 0.8 * expected[0].Loss, "the run must learn for the comparison to mean anything");
        // Not compared: validation scores. Batch norm's running statistics take one update per forward pass, so k
        // micro-batches move them k times per step (as in PyTorch); eval mode uses them.
    }

    static List<(double Loss, double Lr)> Rows(string trainLog) =>
        File.ReadAllLines(trainLog).Skip(1).Select(l => l.Split(','))
            .Select(f => (double.Parse(f[1], CultureInfo.InvariantCulture), double.Parse(f[^1], CultureInfo.InvariantCulture))).ToList();
}
