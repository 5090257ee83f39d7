using System.Diagnostics;
using System.Globalization;
using Seg.Bench.Baselines;
using Seg.Core;
using Seg.Core.Losses;
using Seg.Core.Losses.LovaszLosses;
using Seg.Core.Losses.PixelLosses;
using TorchSharp;
using static TorchSharp.torch;
using static Seg.Bench.Stats;

namespace Seg.Bench;

/// <summary>
/// <c>loss-step</c>: forward + backward of each loss from logits on any device, as ratios to cross-entropy measured
/// in the same round (the CPU figures come from <see cref="LovaszBenchmarks"/>; this harness needs no SDK, so it
/// also runs from a published Seg.Bench on a GPU machine). Each round times a block of steps per loss in a rotated
/// order and synchronises the device after every step; the report gives each loss's median step and the median
/// over rounds of its ratio to cross-entropy.
/// </summary>
public static class LossStepComparison
{
    /// <summary>The <c>loss-step</c> verb: parses its options from <paramref name="args"/>, runs, and prints the report.</summary>
    public static int Run(string[] args)
    {
        string deviceName = "cpu";
        int rounds = 7, steps = 20, warmup = 3, batch = 8, classes = 21, size = 128, threads = 0;
        bool official = true;
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"loss-step: {args[i]} needs a value");
            int Int() => int.Parse(Next(), CultureInfo.InvariantCulture);
            switch (args[i])
            {
                case "--device": deviceName = SegRuntime.ParseDevice(Next()).ToString(); break;
                case "--rounds": rounds = Int(); break;
                case "--steps": steps = Int(); break;
                case "--warmup": warmup = Int(); break;
                case "--batch": batch = Int(); break;
                case "--classes": classes = Int(); break;
                case "--size": size = Int(); break;
                case "--threads": threads = Int(); break;
                case "--no-official": official = false; break;
                default: throw new ArgumentException($"loss-step: unknown option '{args[i]}' (options: --device, --rounds, --steps, --warmup, --batch, --classes, --size, --threads, --no-official)");
            }
        }
        SegRuntime.Initialize();
        if (threads > 0) set_num_threads(threads);
        var device = SegRuntime.ResolveDevice(deviceName);
        manual_seed(0);
        var logits = randn(batch, classes, size, size).to(device).requires_grad_(true);
        var labels = randint(0, classes, [batch, size, size], dtype: ScalarType.Int64)
            .masked_fill(rand(batch, size, size).lt(0.05), 255).to(device);
        var crossEntropy = new SoftmaxCrossEntropyLoss(ignoreIndex: 255);
        var exact = new LovaszSoftmaxLoss(ignoreIndex: 255);
        var histogram = new LovaszSoftmaxLoss(ignoreIndex: 255, bins: 4096);
        var losses = new List<(string Name, Func<Tensor> Loss)>
        {
            ("cross_entropy", () => crossEntropy.call(logits, labels)),
            ("lovasz_exact", () => exact.call(logits, labels)),
            ("lovasz_histogram_4096", () => histogram.call(logits, labels)),
        };
        if (official) losses.Add(("official_loop_port", () => OfficialLovaszPort.LovaszSoftmax(logits.softmax(1), labels, ignore: 255)));
        Console.WriteLine($"loss-step: B={batch}, C={classes}, {size}x{size}, 5 % ignored; device {device}, {get_num_threads()} threads; {rounds} rounds of {steps} steps");

        double Step(Func<Tensor> loss)
        {
            using var scope = NewDisposeScope();
            logits.grad?.zero_();
            var watch = Stopwatch.StartNew();
            var value = loss();
            value.backward();
            _ = value.item<float>();   // waits for the device: the step is complete
            return watch.Elapsed.TotalMilliseconds;
        }

        var medians = losses.ToDictionary(l => l.Name, _ => new List<double>());
        var ratios = losses.ToDictionary(l => l.Name, _ => new List<double>());
        for (int r = 0; r < rounds; r++)
        {
            var round = new Dictionary<string, double>();
            for (int k = 0; k < losses.Count; k++)
            {
                var (name, loss) = losses[(k + r) % losses.Count];
                for (int w = 0; w < warmup; w++) Step(loss);
                round[name] = Median(Enumerable.Range(0, steps).Select(_ => Step(loss)).ToList());
            }
            foreach (var (name, ms) in round)
            {
                medians[name].Add(ms);
                ratios[name].Add(ms / round["cross_entropy"]);
            }
        }
        Console.WriteLine("| loss | median step (ms) | ÷ cross-entropy (median of rounds) | range |");
        Console.WriteLine("|---|---:|---:|---|");
        foreach (var (name, _) in losses)
            Console.WriteLine($"| {name} | {Median(medians[name]):F3} | {Median(ratios[name]):F2}× | {ratios[name].Min():F2}–{ratios[name].Max():F2} |");
        if (official)
        {
            var portOverExact = medians["official_loop_port"].Zip(medians["lovasz_exact"], (p, e) => p / e).ToList();
            Console.WriteLine($"official loop port ÷ Seg exact: {Median(portOverExact):F2}×");
        }
        return 0;
    }

}
