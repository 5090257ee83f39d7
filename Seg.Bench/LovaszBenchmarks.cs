using BenchmarkDotNet.Attributes;
using Seg.Bench.Baselines;
using Seg.Core;
using Seg.Core.Losses;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Bench;

/// <summary>
/// Forward + backward from logits on CPU with 2 threads, B=8, C=21, 128×128, 5 % of pixels ignored (label 255):
/// cross-entropy, exact batched Lovász-Softmax, histogram mode (4096 bins) and a port of the reference per-class loop
/// (all from logits through softmax, as a training step sees them); the Jaccard metric loss per dataset, with all
/// three aggregations, and on boundary-smoothed soft labels made in the step (as the trainer does); the multi-label
/// Lovász on one-vs-rest targets. Many iterations because the machines these run on are often shared; compare the
/// ratios of one run.
/// </summary>
[MemoryDiagnoser(false)]
[SimpleJob(launchCount: 1, warmupCount: 3, iterationCount: 15)]
public class LovaszBenchmarks
{
    const int Batch = 8, Classes = 21, Size = 128;
    Tensor logits = null!;
    Tensor labels = null!;
    CrossEntropyLoss crossEntropy = null!;
    LovaszSoftmaxLoss exact = null!;
    LovaszSoftmaxLoss histogram = null!;
    JaccardMetricLoss jaccardMetric = null!;
    JaccardMetricLoss jaccardMetricAllAggregations = null!;
    LovaszSigmoidLoss lovaszSigmoid = null!;

    [GlobalSetup]
    public void Setup()
    {
        SegRuntime.Initialize();
        torch.set_num_threads(2);
        torch.manual_seed(0);
        logits = torch.randn(Batch, Classes, Size, Size).requires_grad_(true);
        var y = torch.randint(0, Classes, [Batch, Size, Size], dtype: ScalarType.Int64);
        labels = y.masked_fill(torch.rand(Batch, Size, Size).lt(0.05), 255);
        crossEntropy = new CrossEntropyLoss(ignoreIndex: 255);
        exact = new LovaszSoftmaxLoss(ignoreIndex: 255);
        histogram = new LovaszSoftmaxLoss(ignoreIndex: 255, bins: 4096);
        jaccardMetric = new JaccardMetricLoss(ignoreIndex: 255);
        jaccardMetricAllAggregations = new JaccardMetricLoss(perDataset: 1, perImage: 1, perClass: 1, ignoreIndex: 255);
        lovaszSigmoid = new LovaszSigmoidLoss(ignoreIndex: 255);
    }

    double Step(Func<Tensor> loss)
    {
        using var scope = torch.NewDisposeScope();
        logits.grad?.zero_();
        var value = loss();
        value.backward();
        return value.item<float>();
    }

    [Benchmark(Baseline = true)]
    public double CrossEntropy() => Step(() => crossEntropy.call(logits, labels));

    [Benchmark]
    public double LovaszExact() => Step(() => exact.call(logits, labels));

    [Benchmark]
    public double LovaszHistogram4096() => Step(() => histogram.call(logits, labels));

    [Benchmark]
    public double JaccardMetric() => Step(() => jaccardMetric.call(logits, labels));

    [Benchmark]
    public double JaccardMetricThreeAggregations() => Step(() => jaccardMetricAllAggregations.call(logits, labels));

    [Benchmark]
    public double JaccardMetricBoundarySoftLabels() =>
        Step(() => jaccardMetric.call(logits, SoftLabels.BoundarySmoothing(labels, Classes, ignoreIndex: 255)));

    [Benchmark]
    public double LovaszSigmoid() => Step(() => lovaszSigmoid.call(logits, labels));

    [Benchmark]
    public double LovaszOfficialPort() => Step(() => OfficialLovaszPort.LovaszSoftmax(logits.softmax(1), labels, ignore: 255));
}
