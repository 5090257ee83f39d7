using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Seg.Core.Native;
using static TorchSharp.torch;
using static Seg.Bench.Stats;

namespace Seg.Bench;

/// <summary>
/// <c>threads</c>: the default thread choice (<c>train.threads: 0</c>, <see cref="TorchThreads"/>) against one thread
/// and all threads, with 0, 1 and 2 competing busy processes (<c>yes &gt; /dev/null</c>, started and stopped here).
/// Each measurement is a fresh child process (libgomp reads its wait policy once, at load) timing the default
/// config's UNet step (<c>train-step</c>'s: depth 3, width 16, batch 8 of 64×64, 4 classes, cross-entropy + Lovász-Softmax, AdamW);
/// within a round the configurations run one after another, in an order that rotates from round to round, so that
/// drift on a shared machine hits them alike. Reported: each configuration's median step and the ratio of the
/// automatic choice to the better of "1 thread" and "all threads".
/// Configurations: <c>1</c>, <c>all</c> (Environment.ProcessorCount threads, GOMP_SPINCOUNT=1000 as Seg sets it),
/// <c>all-passive</c> (the same with OMP_WAIT_POLICY=PASSIVE: workers sleep at once), <c>all-spin</c> (libgomp's own
/// default spin of 300,000, as before Seg set anything), <c>auto</c>
/// (what <c>train.threads: 0</c> does: the load-based start, then <see cref="ThreadTuner"/>; its warm-up covers the
/// tuner's first probe, which repeats every two minutes in a real run).
/// </summary>
public static class ThreadChoiceBench
{
    static readonly string[] Configs = ["1", "all", "all-passive", "all-spin", "auto"];

    /// <summary>The <c>threads</c> verb: parses its options from <paramref name="args"/>, runs, and prints the report.</summary>
    public static int Run(string[] args)
    {
        int rounds = 3, steps = 15, warmup = 5;
        var busyCounts = new[] { 0, 1, 2 };
        string? json = null;
        for (var i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"threads: {args[i]} needs a value");
            switch (args[i])
            {
                case "--rounds": rounds = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--steps": steps = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--warmup": warmup = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--busy": busyCounts = Next().Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray(); break;
                case "--json": json = Next(); break;
                default:
                    Console.WriteLine("threads [--rounds N (3)] [--steps N (15)] [--warmup N (5)] [--busy 0,1,2] [--json FILE]");
                    return args[i] is "--help" or "-h" ? 0 : 2;
            }
        }
        Console.WriteLine($"threads: default UNet step (CE + Lovász, batch 8x64x64); {Environment.ProcessorCount} usable cores, " +
                          $"{rounds} rounds of {steps} steps (+{warmup} warm-up) per configuration; {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        var results = new List<object>();
        foreach (var busy in busyCounts)
        {
            var spinners = Enumerable.Range(0, busy).Select(_ => StartSpinner()).ToList();
            try
            {
                Thread.Sleep(500);
                var ms = Configs.ToDictionary(c => c, _ => new List<double>());
                var autoThreads = new List<int>();
                var loads = new List<string>();
                for (var r = 0; r < rounds; r++)
                {
                    loads.Add(File.ReadAllText("/proc/loadavg").Split(' ')[0]);
                    for (var k = 0; k < Configs.Length; k++)
                    {
                        var config = Configs[(k + r) % Configs.Length];
                        var (median, threads) = Child(config, steps, warmup);
                        ms[config].Add(median);
                        if (config == "auto") autoThreads.Add(threads);
                    }
                }
                var m = ms.ToDictionary(kv => kv.Key, kv => Median(kv.Value));
                var better = Math.Min(m["1"], m["all"]);
                var ratio = m["auto"] / better;
                Console.WriteLine($"busy {busy}: 1 thread {m["1"]:F1} ms, all {m["all"]:F1} ms, all (passive) {m["all-passive"]:F1} ms, all (spinning) {m["all-spin"]:F1} ms, " +
                                  $"auto {m["auto"]:F1} ms (chose {string.Join('/', autoThreads)}); auto / better = {ratio:F3}; load avg at rounds {string.Join(' ', loads)}");
                results.Add(new { busy, one_ms = m["1"], all_ms = m["all"], all_passive_ms = m["all-passive"], all_spin_ms = m["all-spin"], auto_ms = m["auto"],
                    auto_threads = autoThreads, auto_over_better = ratio, rounds_ms = ms, loadavg = loads });
            }
            finally
            {
                foreach (var s in spinners) { s.Kill(); s.WaitForExit(); s.Dispose(); }
            }
        }
        if (json is not null) File.WriteAllText(json, JsonSerializer.Serialize(results, new JsonSerializerOptions { WriteIndented = true }));
        return 0;
    }

    // A busy loop in its own process: yes writing to /dev/null (through a shell that execs it, since a pipe nobody
    // reads would block it).
    static Process StartSpinner() =>
        Process.Start(new ProcessStartInfo("/bin/sh") { UseShellExecute = false, ArgumentList = { "-c", "exec yes > /dev/null" } })
        ?? throw new InvalidOperationException("could not start a busy process (/bin/sh -c 'exec yes > /dev/null')");

    static (double Ms, int Threads) Child(string config, int steps, int warmup)
    {
        var psi = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        var entry = Environment.GetCommandLineArgs()[0];
        if (entry.EndsWith(".dll", StringComparison.OrdinalIgnoreCase)) psi.ArgumentList.Add(entry);
        foreach (var a in new[] { "threads-child", config, $"{steps}", $"{warmup}" }) psi.ArgumentList.Add(a);
        psi.Environment.Remove("OMP_WAIT_POLICY");
        psi.Environment.Remove("OMP_NUM_THREADS");
        psi.Environment.Remove("GOMP_SPINCOUNT");
        if (config == "all-spin") psi.Environment["GOMP_SPINCOUNT"] = "300000";   // libgomp's default when no policy is set
        if (config == "all-passive") psi.Environment["OMP_WAIT_POLICY"] = "PASSIVE";
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start the child");
        var err = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"threads-child {config} exited with {p.ExitCode}: {err.Result}");
        using var doc = JsonDocument.Parse(output.Trim().Split('\n')[^1]);
        return (doc.RootElement.GetProperty("ms").GetDouble(), doc.RootElement.GetProperty("threads").GetInt32());
    }

    /// <summary>The child: set threads as <paramref name="args"/>[0] says, time the step, print one JSON line.</summary>
    public static int RunChild(string[] args)
    {
        var (config, steps, warmup) = (args[0], int.Parse(args[1], CultureInfo.InvariantCulture), int.Parse(args[2], CultureInfo.InvariantCulture));
        var choice = config switch
        {
            "1" => TorchThreads.Apply(1),
            "all" or "all-passive" or "all-spin" => TorchThreads.Apply(Environment.ProcessorCount),
            _ => TorchThreads.Apply(0),
        };
        // auto: as the trainer, the load-based start and then the tuner; the warm-up covers its first probe.
        var tuner = config == "auto" ? ThreadTuner.For(choice, 0) : null;
        if (tuner is not null) warmup = Math.Max(warmup, 2 * (ThreadTuner.ProbeSteps + 1) + 1);
        var times = TrainStepComparison.SegSteps("ce_lovasz", CPU, TrainStepComparison.Options.Default(warmup, steps), tuner);
        Console.WriteLine(JsonSerializer.Serialize(new { ms = Median(times), threads = tuner?.Threads ?? choice.Threads, reason = choice.Reason }));
        return 0;
    }
}
