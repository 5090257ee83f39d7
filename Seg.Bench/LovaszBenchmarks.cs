using BenchmarkDotNet.Attributes;
using Seg.Bench.Baselines;
using Seg.Core;
using Seg.Core.Losses;
using Seg.Core.Losses.LovaszLosses;
using Seg.Core.Losses.MetricLosses;
using Seg.Core.Losses.PixelLosses;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Bench;

/// <summary>
/// Forward + backward from logits, B=8, C=21, 128×128, 5 % of pixels ignored (label 255): cross-entropy, the exact
/// Lovász-Softmax and its histogram mode (4096 bins) as <see cref="LovaszSoftmaxLoss"/> runs them (the fused CPU
/// kernels on the CPU), the same two through the device-generic path (what runs on a GPU: one sort for all rows),
/// a port of the reference per-class loop, the Jaccard metric loss (per dataset, all three aggregations, and on
/// boundary-smoothed soft labels made in the step, as the trainer does) and the multi-label Lovász on one-vs-rest
/// targets; all from logits through softmax, as a training step sees them.
/// <para>
/// The device is the environment variable <c>SEG_BENCH_DEVICE</c> (default <c>cpu</c>; e.g. <c>cuda</c>,
/// <c>cuda:1</c>). Each step ends by reading the loss value, which waits for the device, so GPU timings cover the
/// whole step. CPU runs use 2 torch threads. Many iterations because the machines these run on are often shared;
/// compare the ratios of one run.
/// </para>
/// </summary>
[MemoryDiagnoser(false)]
// Run settings as job mutators, not a [SimpleJob]: they then apply to the job --inProcess adds (on a machine with no
// .NET SDK to build the out-of-process job) instead of declaring a second job beside it.
[WarmupCount(3), IterationCount(15)]
public class LovaszBenchmarks
{
    const int Batch = 8, Classes = 21, Size = 128;
    Tensor logits = null!;
    Tensor labels = null!;
    SoftmaxCrossEntropyLoss crossEntropy = null!;
    LovaszSoftmaxLoss exact = null!;
    LovaszSoftmaxLoss histogram = null!;
    JaccardMetricLoss jaccardMetric = null!;
    JaccardMetricLoss jaccardMetricAllAggregations = null!;
    LovaszSigmoidLoss lovaszSigmoid = null!;

    /// <summary>The device named by <c>SEG_BENCH_DEVICE</c> (default cpu), checked to be usable.</summary>
    public static Device BenchDevice()
    {
        var name = Environment.GetEnvironmentVariable("SEG_BENCH_DEVICE");
        name = string.IsNullOrWhiteSpace(name) ? "cpu" : name.Trim();
        try { return SegRuntime.ResolveDevice(name); }
        catch (Exception e) when (e is DeviceNameException or DeviceUnavailableException)
        {
            throw new InvalidOperationException($"SEG_BENCH_DEVICE={name}: {e.Message}", e);
        }
    }

    /// <summary>Random logits and labels (5 % ignored) on the benchmark device, and the loss modules.</summary>
    [GlobalSetup]
    public void Setup()
    {
        SegRuntime.Initialize();
        var device = BenchDevice();
        torch.set_num_threads(2);
        torch.manual_seed(0);
        logits = torch.randn(Batch, Classes, Size, Size).to(device).requires_grad_(true);
        var y = torch.randint(0, Classes, [Batch, Size, Size], dtype: ScalarType.Int64);
        labels = y.masked_fill(torch.rand(Batch, Size, Size).lt(0.05), 255).to(device);
        crossEntropy = new SoftmaxCrossEntropyLoss(ignoreIndex: 255);
        exact = new LovaszSoftmaxLoss(ignoreIndex: 255);
        histogram = new LovaszSoftmaxLoss(ignoreIndex: 255, bins: 4096);
        jaccardMetric = new JaccardMetricLoss(ignoreIndex: 255);
        jaccardMetricAllAggregations = new JaccardMetricLoss(perDataset: 1, perImage: 1, perClass: 1, ignoreIndex: 255);
        lovaszSigmoid = new LovaszSigmoidLoss(ignoreIndex: 255);
        Console.WriteLine($"// LovaszBenchmarks on {device}");
    }

    double Step(Func<Tensor> loss)
    {
        using var scope = torch.NewDisposeScope();
        logits.grad?.zero_();
        var value = loss();
        value.backward();
        return value.item<float>();   // waits for the device: the timing covers the whole step
    }

    Tensor Generic(int bins) =>
        Lovasz.SoftmaxWithKernelChoice(logits.softmax(1), labels, ClassSelection.Present, perImage: false, 255, bins, allowCpuKernel: false);

    /// <summary>Cross-entropy (ATen's fused kernel): the baseline.</summary>
    [Benchmark(Baseline = true)]
    public double CrossEntropy() => Step(() => crossEntropy.call(logits, labels));

    /// <summary>Exact Lovász-Softmax (the fused CPU kernel on the CPU).</summary>
    [Benchmark]
    public double LovaszExact() => Step(() => exact.call(logits, labels));

    /// <summary>Lovász-Softmax in histogram mode, 4096 bins.</summary>
    [Benchmark]
    public double LovaszHistogram4096() => Step(() => histogram.call(logits, labels));

    /// <summary>Jaccard metric loss, per dataset, on hard labels.</summary>
    [Benchmark]
    public double JaccardMetric() => Step(() => jaccardMetric.call(logits, labels));

    /// <summary>Jaccard metric loss with the per-dataset, per-image and per-class aggregations together.</summary>
    [Benchmark]
    public double JaccardMetricThreeAggregations() => Step(() => jaccardMetricAllAggregations.call(logits, labels));

    /// <summary>Jaccard metric loss on boundary-smoothed soft labels, the smoothing included.</summary>
    [Benchmark]
    public double JaccardMetricBoundarySoftLabels() =>
        Step(() => jaccardMetric.call(logits, SoftLabels.BoundarySmoothing(labels, Classes, ignoreIndex: 255)));

    /// <summary>Lovász-Sigmoid: every class a one-vs-rest binary problem.</summary>
    [Benchmark]
    public double LovaszSigmoid() => Step(() => lovaszSigmoid.call(logits, labels));

    /// <summary>Exact Lovász-Softmax by the device-generic (GPU) path, even on the CPU.</summary>
    [Benchmark]
    public double LovaszExactGeneric() => Step(() => Generic(0));

    /// <summary>Histogram Lovász-Softmax by the device-generic path.</summary>
    [Benchmark]
    public double LovaszHistogram4096Generic() => Step(() => Generic(4096));

    /// <summary>The reference implementation's per-class loop, ported: what the fused kernel replaces.</summary>
    [Benchmark]
    public double LovaszOfficialPort() => Step(() => OfficialLovaszPort.LovaszSoftmax(logits.softmax(1), labels, ignore: 255));
}
