using Seg.Core;
using Seg.Data;
using Seg.Data.Datasets;
using Seg.Data.Transforms;
using Seg.Tests.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Tests.Distributed;

/// <summary>The global batch of a step is the same samples, augmented the same way, however it is split over
/// processes (rank slices) and micro-batches (accumulation); the oracle is one process with the whole batch.</summary>
public class ShardingTests
{
    public ShardingTests() => SegRuntime.Initialize();

    static SegmentationLoader Loader(ISegmentationDataset ds, int batch, int world = 1, int rank = 0, int accumulate = 1) =>
        new(ds, new TransformPipeline([new HorizontalFlip(), new RandomRotate(-30, 30)]),
            new LoaderOptions { BatchSize = batch, Workers = 0, Seed = 7, WorldSize = world, Rank = rank, Accumulate = accumulate }, CPU);

    // Sample index -> its augmented image, for the first `steps` steps of a split (world, batch, accumulate).
    static List<Dictionary<int, Tensor>> Steps(ISegmentationDataset ds, int batch, int world, int accumulate, int steps, int from = 0)
    {
        var result = Enumerable.Range(0, steps).Select(_ => new Dictionary<int, Tensor>()).ToList();
        for (var rank = 0; rank < world; rank++)
        {
            using var loader = Loader(ds, batch, world, rank, accumulate);
            foreach (var b in loader.Iterate((long)from * accumulate).Take(steps * accumulate))
                using (b)
                {
                    var step = (int)(b.Iteration / accumulate) - from;
                    for (var i = 0; i < b.Count; i++) result[step].Add(b.Indices[i], b.Images[i].clone());
                }
        }
        return result;
    }

    [Theory]
    [InlineData(2, 4, 1)]
    [InlineData(1, 4, 2)]
    [InlineData(2, 2, 2)]
    [InlineData(4, 1, 2)]
    public void A_step_takes_the_same_augmented_samples_for_any_split_of_the_global_batch(int world, int batch, int accumulate)
    {
        var ds = new ShapesDataset(36, size: 24, seed: 3);   // 36 = 4 steps of 8 and a remainder: epochs wrap at the same step
        const int steps = 9;
        var oracle = Steps(ds, 8, 1, 1, steps);
        var split = Steps(ds, batch, world, accumulate, steps);
        for (var t = 0; t < steps; t++)
        {
            Assert.Equal(oracle[t].Keys.Order(), split[t].Keys.Order());
            foreach (var (index, image) in oracle[t]) Assert.True(image.equal(split[t][index]).all().item<bool>(), $"step {t}, sample {index}: augmentation differs");
        }
        // Resuming at step 5 gives step 5's samples.
        var resumed = Steps(ds, batch, world, accumulate, 2, from: 5);
        Assert.Equal(oracle[5].Keys.Order(), resumed[0].Keys.Order());
    }

    [Fact]
    public void Evaluation_batches_are_dealt_round_robin_and_cover_the_split_once()
    {
        var ds = new IndexDataset(11);
        var seen = new List<int>();
        for (var rank = 0; rank < 3; rank++)
        {
            using var loader = new SegmentationLoader(ds, TransformPipeline.Empty,
                new LoaderOptions { BatchSize = 2, Workers = 0, Shuffle = false, DropLast = false, WorldSize = 3, Rank = rank }, CPU);
            var batches = loader.Epoch().Select(b => { using (b) return (b.Iteration, b.Indices.ToArray()); }).ToList();
            Assert.Equal(loader.RankEvalBatches, batches.Count);
            Assert.All(batches, b => Assert.Equal(rank, b.Iteration % 3));
            seen.AddRange(batches.SelectMany(b => b.Item2));
        }
        Assert.Equal(Enumerable.Range(0, 11), seen.Order());
    }

    [Fact]
    public void A_dataset_smaller_than_one_global_step_is_named_with_the_split()
    {
        using var loader = Loader(new IndexDataset(10), batch: 4, world: 2, rank: 1, accumulate: 2);
        var e = Assert.Throws<InvalidOperationException>(() => loader.Iterate().First());
        Assert.Contains("a step takes 16 samples (batch 4 x 2 processes x 2 micro-batches)", e.Message);
    }
}
