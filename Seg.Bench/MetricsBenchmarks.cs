using BenchmarkDotNet.Attributes;
using Seg.Bench.Baselines;
using Seg.Core;
using Seg.Core.Metrics;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Bench;

/// <summary>
/// Cost of scoring one evaluation batch, CPU with 2 threads: B=8 predictions and labels of 128×128, C=21, 5 % of
/// pixels ignored. <c>Update</c> (per-image statistics kept, no host read) against the update before per-image
/// statistics existed (<see cref="PreviousConfusionUpdate"/>), and the one-off cost of reading mIoU^I, mIoU^C and the
/// worst cases (<see cref="SegmentationMetrics.From(ConfusionMatrix, IReadOnlyList{string})"/>) after 2000 images of 150 classes (an ADE20K-sized
/// validation set). Compare the ratios of one run (the Min column is the least disturbed on a shared machine).
/// </summary>
[MemoryDiagnoser(false)]
[MinColumn]
[SimpleJob(launchCount: 1, warmupCount: 3, iterationCount: 15)]
public class MetricsBenchmarks
{
    const int Batch = 8, Classes = 21, Size = 128;
    Tensor predictions = null!;
    Tensor labels = null!;
    ConfusionMatrix matrix = null!;
    PreviousConfusionUpdate previous = null!;
    ConfusionMatrix large = null!;

    /// <summary>Random predictions and labels (5 % ignored), and a 150-class matrix filled with 2000 images.</summary>
    [GlobalSetup]
    public void Setup()
    {
        SegRuntime.Initialize();
        torch.set_num_threads(2);
        torch.manual_seed(0);
        var y = torch.randint(0, Classes, [Batch, Size, Size], dtype: ScalarType.Int64);
        labels = y.masked_fill(torch.rand(Batch, Size, Size).lt(0.05), 255);
        predictions = y.where(torch.rand(Batch, Size, Size).lt(0.7), torch.randint(0, Classes, [Batch, Size, Size], dtype: ScalarType.Int64));
        matrix = new ConfusionMatrix(Classes);
        previous = new PreviousConfusionUpdate(Classes);

        large = new ConfusionMatrix(150);
        for (var i = 0; i < 2000 / 16; i++)
        {
            using var scope = torch.NewDisposeScope();
            var l = torch.randint(0, 150, [16, 32, 32], dtype: ScalarType.Int64);
            large.Update(l.where(torch.rand(16, 32, 32).lt(0.8), torch.randint(0, 150, [16, 32, 32], dtype: ScalarType.Int64)), l);
        }
    }

    /// <summary>Frees the native tensors after the runs.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        matrix.Dispose();
        large.Dispose();
    }

    /// <summary>The confusion-matrix update before per-image statistics (masked_select, bincount, host reads): the baseline.</summary>
    [Benchmark(Baseline = true)]
    public long PreviousUpdate()
    {
        previous.Update(predictions, labels);
        return previous.Total();
    }

    /// <summary><c>ConfusionMatrix.Update</c>, per-image statistics included.</summary>
    [Benchmark]
    public long Update()
    {
        matrix.Update(predictions, labels);
        return matrix.ToArray()[0, 0];
    }

    /// <summary>Reading mIoU^I, mIoU^C and their worst cases from 2000 images of 150 classes.</summary>
    [Benchmark]
    public double ReadFineGrained2000ImagesOf150Classes()
    {
        var m = SegmentationMetrics.From(large);
        return m.MeanIoUPerImage + m.MeanIoUPerClass + m.WorstMeanIoUPerImage(0.05) + m.WorstMeanIoUPerClass(0.1);
    }
}
