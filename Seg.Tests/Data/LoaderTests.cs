using OpenCvSharp;
using Seg.Core;
using Seg.Data;
using Seg.Data.Datasets;
using TorchSharp;
using static TorchSharp.torch;
using Scalar = OpenCvSharp.Scalar;

namespace Seg.Tests.Data;

/// <summary>A dataset whose sample i is a 4×5 image filled with value i (all channels) and mask i mod 3.</summary>
sealed class IndexDataset(int count, Action<int>? onGet = null) : ISegmentationDataset
{
    int reads;
    public int Reads => Volatile.Read(ref reads);
    public int Count => count;
    public int NumClasses => 3;
    public long IgnoreIndex => 255;
    public IReadOnlyList<string> ClassNames => ["a", "b", "c"];
    public IReadOnlyList<(byte R, byte G, byte B)> Palette => [(0, 0, 0), (1, 1, 1), (2, 2, 2)];
    public SegmentationSample Get(int index)
    {
        Interlocked.Increment(ref reads);
        onGet?.Invoke(index);
        return new SegmentationSample(new Mat(4, 5, MatType.CV_8UC3, Scalar.All(index)), new Mat(4, 5, MatType.CV_8UC1, Scalar.All(index % 3)), $"s{index}");
    }
}

public class LoaderTests
{
    public LoaderTests() => SegRuntime.Initialize();

    static SegmentationLoader Loader(ISegmentationDataset ds, int batch = 4, int workers = 2, bool dropLast = true, bool shuffle = true, int seed = 0, int? prefetch = null) =>
        new(ds, TransformPipeline.Empty, new LoaderOptions { BatchSize = batch, Workers = workers, DropLast = dropLast, Shuffle = shuffle, Seed = seed, Prefetch = prefetch }, CPU);

    // The dataset index a batch row came from, read back from the image values (value i / 255).
    static int[] IndicesFromPixels(SegmentationBatch b) =>
        Enumerable.Range(0, b.Count).Select(i => (int)Math.Round(b.Images[i, 0, 0, 0].item<float>() * 255)).ToArray();

    [Fact]
    public void BatchesHaveTheContractShapesTypesAndValues()
    {
        using var loader = Loader(new IndexDataset(10), batch: 4);
        using var b = loader.Iterate().First();
        Assert.Equal(new long[] { 4, 3, 4, 5 }, b.Images.shape);
        Assert.Equal(ScalarType.Float32, b.Images.dtype);
        Assert.Equal(new long[] { 4, 4, 5 }, b.Labels.shape);
        Assert.Equal(ScalarType.Int64, b.Labels.dtype);
        Assert.Equal(IndicesFromPixels(b), b.Indices);
        for (int i = 0; i < 4; i++)
        {
            Assert.Equal($"s{b.Indices[i]}", b.Ids[i]);
            Assert.Equal(b.Indices[i] % 3, b.Labels[i, 2, 3].item<long>());
        }
    }

    [Fact]
    public void ImagesComeOutRgbAndNormalised()
    {
        var ds = new ColourDataset();
        using var loader = new SegmentationLoader(ds, new TransformPipeline([new Seg.Data.Transforms.Normalize([0.5, 0.5, 0.5], [0.5, 0.25, 0.125])]),
            new LoaderOptions { BatchSize = 1, Workers = 1, DropLast = false }, CPU);
        using var b = loader.Epoch().Single();
        // BGR pixel (B=0, G=51, R=255): R plane (255/255-0.5)/0.5 = 1, G plane (0.2-0.5)/0.25 = -1.2, B plane (0-0.5)/0.125 = -4.
        Assert.Equal(1.0, b.Images[0, 0, 1, 1].item<float>(), 5);
        Assert.Equal(-1.2, b.Images[0, 1, 1, 1].item<float>(), 5);
        Assert.Equal(-4.0, b.Images[0, 2, 1, 1].item<float>(), 5);
    }

    sealed class ColourDataset : ISegmentationDataset
    {
        public int Count => 1;
        public int NumClasses => 2;
        public long IgnoreIndex => 255;
        public IReadOnlyList<string> ClassNames => ["a", "b"];
        public IReadOnlyList<(byte R, byte G, byte B)> Palette => [(0, 0, 0), (9, 9, 9)];
        public SegmentationSample Get(int index) =>
            new(new Mat(3, 3, MatType.CV_8UC3, new Scalar(0, 51, 255)), new Mat(3, 3, MatType.CV_8UC1, Scalar.All(1)), "c");
    }

    [Fact]
    public void EachEpochIsASeededPermutationWithDropLast()
    {
        var ds = new IndexDataset(10);
        using var loader = Loader(ds, batch: 3);
        Assert.Equal(3, loader.BatchesPerEpoch); // floor(10 / 3)
        var seen = new List<int[]>();
        foreach (var b in loader.Iterate().Take(9)) using (b) seen.Add(b.Indices.ToArray());
        var epochs = Enumerable.Range(0, 3).Select(e => seen.Skip(3 * e).Take(3).SelectMany(x => x).ToArray()).ToArray();
        foreach (var e in epochs)
        {
            Assert.Equal(9, e.Length);
            Assert.Equal(9, e.Distinct().Count()); // no repeats within an epoch, one sample dropped
        }
        Assert.NotEqual(epochs[0], epochs[1]);
        Assert.Equal(epochs[0], loader.Order(0)[..9]);

        using var same = Loader(new IndexDataset(10), batch: 3);
        using var other = Loader(new IndexDataset(10), batch: 3, seed: 1);
        Assert.Equal(loader.Order(4), same.Order(4));
        Assert.NotEqual(loader.Order(4), other.Order(4));
        Assert.Equal(Enumerable.Range(0, 10), loader.Order(4).Order());
    }

    [Fact]
    public void ResumeGivesTheSameBatchesWithoutReadingEarlierData()
    {
        var full = new IndexDataset(11);
        using var a = Loader(full, batch: 2);
        var reference = new List<(int[] Idx, float[] Pix)>();
        foreach (var b in a.Iterate().Take(12)) using (b) reference.Add((b.Indices.ToArray(), b.Images.data<float>().ToArray()));

        var resumed = new IndexDataset(11);
        using var r = Loader(resumed, batch: 2, workers: 1, prefetch: 1);
        int k = 7;
        foreach (var b in r.Iterate(fromIteration: k).Take(5))
            using (b)
            {
                Assert.Equal(k, b.Iteration);
                Assert.Equal(reference[k].Idx, b.Indices);
                Assert.Equal(reference[k].Pix, b.Images.data<float>().ToArray());
                k++;
            }
        // 5 batches of 2, plus at most the one-batch prefetch window: no replay of iterations 0..6.
        Assert.InRange(resumed.Reads, 10, 12);
    }

    [Fact]
    public void EvalEpochIsInOrderWithAPartialLastBatch()
    {
        using var loader = Loader(new IndexDataset(10), batch: 4);
        var batches = loader.Epoch().ToList();
        Assert.Equal(3, loader.EvalBatches);
        Assert.Equal(new[] { 4, 4, 2 }, batches.Select(b => b.Count));
        Assert.Equal(Enumerable.Range(0, 10), batches.SelectMany(IndicesFromPixels));
        batches.ForEach(b => b.Dispose());

        using var keep = Loader(new IndexDataset(10), batch: 4, dropLast: false);
        Assert.Equal(3, keep.BatchesPerEpoch);
        var sizes = keep.Iterate().Take(3).Select(b => { using (b) return b.Count; }).ToArray();
        Assert.Equal(new[] { 4, 4, 2 }, sizes);
    }

    [Fact]
    public void WorkerCountDoesNotChangeTheData()
    {
        var pipeline = TransformPipeline.FromConfig(new (string, IReadOnlyDictionary<string, object?>)[]
        {
            ("random_scale", new Dictionary<string, object?> { ["range"] = new[] { 0.5, 1.5 } }),
            ("random_crop", new Dictionary<string, object?> { ["size"] = 24 }),
            ("horizontal_flip", new Dictionary<string, object?>()),
            ("normalize", new Dictionary<string, object?>()),
        });
        float[][] Run(int workers)
        {
            var ds = DatasetFactory.Create(new DatasetOptions { Count = 12, Size = 32 });
            using var loader = new SegmentationLoader(ds, pipeline, new LoaderOptions { BatchSize = 3, Workers = workers, Seed = 9 }, CPU);
            return loader.Iterate().Take(6).Select(b => { using (b) return b.Images.data<float>().ToArray().Concat(b.Labels.data<long>().ToArray().Select(l => (float)l)).ToArray(); }).ToArray();
        }
        var serial = Run(0);
        var threaded = Run(2);
        for (int i = 0; i < serial.Length; i++) Assert.Equal(serial[i], threaded[i]);
    }

    [Fact]
    public void PrefetchIsBounded()
    {
        var ds = new IndexDataset(1000);
        using var loader = Loader(ds, batch: 2, workers: 2, prefetch: 3);
        using var e = loader.Iterate().GetEnumerator();
        Assert.True(e.MoveNext());
        e.Current.Dispose();
        Thread.Sleep(300); // give the workers every chance to run ahead
        // Consumed 1 batch; the window allows 3 more queued: at most 4 batches of 2 read.
        Assert.InRange(ds.Reads, 2, 8);
    }

    [Fact]
    public void CancellationAndDisposeStopTheWorkers()
    {
        var ds = new IndexDataset(100);
        using var cts = new CancellationTokenSource();
        var loader = Loader(ds, batch: 2);
        int taken = 0;
        Assert.ThrowsAny<OperationCanceledException>(() =>
        {
            foreach (var b in loader.Iterate(ct: cts.Token))
            {
                b.Dispose();
                if (++taken == 3) cts.Cancel();
            }
        });
        Assert.Equal(3, taken);
        int readsAfterCancel = ds.Reads;
        Thread.Sleep(100);
        Assert.Equal(readsAfterCancel, ds.Reads); // the workers are gone

        // Leaving a foreach early also stops them; Dispose ends a running enumeration.
        using (var b = loader.Iterate().First()) { }
        using var en = loader.Iterate().GetEnumerator();
        Assert.True(en.MoveNext());
        en.Current.Dispose();
        loader.Dispose();
        Assert.ThrowsAny<OperationCanceledException>(() => { while (en.MoveNext()) en.Current.Dispose(); });
        Assert.Throws<ObjectDisposedException>(() => loader.Iterate().First());
    }

    [Fact]
    public void WorkerErrorsReachTheConsumerNamingTheFile()
    {
        var ds = new IndexDataset(20, i => { if (i == 5) throw new BadSampleException("/data/img5.png", "cannot decode image"); });
        using var loader = Loader(ds, batch: 4, shuffle: false);
        var e = Assert.Throws<BadSampleException>(() => { foreach (var b in loader.Iterate()) b.Dispose(); });
        Assert.Contains("/data/img5.png", e.Message);
    }

    [Fact]
    public void MixedSizesInABatchSaySoAndStatsCountSkips()
    {
        using var dir = new TempDir();
        DataFixtures.WriteFolder(dir.Path, 4, 5);
        File.WriteAllBytes(Path.Combine(dir.Path, "images", "img001.png"), [1, 2, 3]);
        var ds = DatasetFactory.Create(new DatasetOptions { Type = "folder", Root = dir.Path, NumClasses = 5, OnBadSample = BadSampleMode.Skip });
        using var loader = Loader(ds, batch: 4, shuffle: false);
        using (var b = loader.Iterate().First())
            Assert.Equal(new[] { "img000", "img002", "img002", "img003" }, b.Ids);
        var stats = loader.Stats;
        Assert.Equal(1, stats.SkippedSamples);
        Assert.Equal(1, stats.Batches);
        Assert.Equal(4, stats.Samples);
        Assert.InRange(stats.DataWaitPercent, 0, 100);

        var mixed = new MixedSizes();
        using var m = new SegmentationLoader(mixed, TransformPipeline.Empty, new LoaderOptions { BatchSize = 2, Workers = 0, Shuffle = false }, CPU);
        var err = Assert.Throws<InvalidOperationException>(() => m.Iterate().First());
        Assert.Contains("'m1' is 6x5", err.Message);
        Assert.Contains("random_crop", err.Message);
    }

    sealed class MixedSizes : ISegmentationDataset
    {
        public int Count => 2;
        public int NumClasses => 2;
        public long IgnoreIndex => 255;
        public IReadOnlyList<string> ClassNames => ["a", "b"];
        public IReadOnlyList<(byte R, byte G, byte B)> Palette => [(0, 0, 0), (9, 9, 9)];
        public SegmentationSample Get(int i) =>
            new(new Mat(4 + i, 5 + i, MatType.CV_8UC3, Scalar.All(0)), new Mat(4 + i, 5 + i, MatType.CV_8UC1, Scalar.All(0)), $"m{i}");
    }

    [Fact]
    public void VisualizationRoundTripsTheLoadersImageAndColoursLabels()
    {
        var ds = new ColourDataset();
        var norm = new Seg.Data.Transforms.Normalize();
        using var loader = new SegmentationLoader(ds, new TransformPipeline([norm]), new LoaderOptions { BatchSize = 1, Workers = 0, DropLast = false }, CPU);
        using var b = loader.Epoch().Single();
        using var image = Visualization.ToImage(b.Images[0], norm);
        Assert.Equal(new Vec3b(0, 51, 255), image.At<Vec3b>(2, 2));
        using var colour = Visualization.Colorize(b.Labels[0], ds.Palette);
        Assert.Equal(new Vec3b(9, 9, 9), colour.At<Vec3b>(0, 0));
        using var lab = new Mat(1, 3, MatType.CV_8UC1);
        lab.Set(0, 0, (byte)0); lab.Set(0, 1, (byte)1); lab.Set(0, 2, (byte)255);
        using var img = new Mat(1, 3, MatType.CV_8UC3, new Scalar(100, 100, 100));
        using var over = Visualization.Overlay(img, lab, [(0, 0, 0), (200, 0, 0)], alpha: 0.5);
        Assert.Equal(new Vec3b(100, 100, 100), over.At<Vec3b>(0, 0)); // background kept
        Assert.Equal(new Vec3b(50, 50, 150), over.At<Vec3b>(0, 1));   // half image, half red (BGR)
        Assert.Equal(new Vec3b(100, 100, 100), over.At<Vec3b>(0, 2)); // ignore kept
        Assert.Equal(new byte[] { 100, 100, 100, 100, 100, 100, 100, 100, 100 }, Visualization.ToRgbBytes(img));
    }
}

public class LoaderSmallDatasetTests
{
    public LoaderSmallDatasetTests() => SegRuntime.Initialize();

    [Fact]
    public void DropLastWithTooFewSamplesStillEvaluatesButCannotTrain()
    {
        using var loader = new SegmentationLoader(new IndexDataset(3), TransformPipeline.Empty, new LoaderOptions { BatchSize = 4, Workers = 1 }, CPU);
        Assert.Equal(0, loader.BatchesPerEpoch);
        using (var b = loader.Epoch().Single()) Assert.Equal(3, b.Count);
        var e = Assert.Throws<InvalidOperationException>(() => loader.Iterate());
        Assert.Contains("drop_last", e.Message);
        Assert.Contains("3 samples", e.Message);
    }
}

public class DataReadmeExampleTests
{
    [Fact]
    public void ReadmeExampleRuns()
    {
        // The data example of docs/data.md, with fewer steps.
        SegRuntime.Initialize();
        var train = DatasetFactory.Create(new DatasetOptions { Type = "shapes", Split = "train" });
        var pipeline = new TransformPipeline([new Seg.Data.Transforms.RandomScale(0.75, 1.25), new Seg.Data.Transforms.RandomCrop(128, 128),
            new Seg.Data.Transforms.HorizontalFlip(), new Seg.Data.Transforms.Normalize()]);
        using var loader = new SegmentationLoader(train, pipeline, new LoaderOptions { BatchSize = 16 }, torch.CPU);
        foreach (var batch in loader.Iterate(fromIteration: 0).Take(2))
            using (batch)
            {
                Assert.Equal(new long[] { 16, 3, 128, 128 }, batch.Images.shape);
                Assert.Equal(new long[] { 16, 128, 128 }, batch.Labels.shape);
            }
    }
}
