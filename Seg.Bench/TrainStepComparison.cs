using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Seg.Core;
using Seg.Core.Native;
using Seg.Core.Losses;
using Seg.Core.Losses.LovaszLosses;
using Seg.Core.Losses.PixelLosses;
using Seg.Models;
using TorchSharp;
using static TorchSharp.torch;
using static Seg.Bench.Stats;

namespace Seg.Bench;

/// <summary>
/// <c>train-step</c>: Seg's training step against PyTorch's on the same machine, in one run. The step is the
/// default config's: <c>unet</c> (depth 3, width 16, bilinear), batch 8 of 64×64, 4 classes, AdamW, forward +
/// backward + optimizer step, with cross-entropy (<c>ce</c>) or cross-entropy + Lovász-Softmax (<c>ce_lovasz</c>;
/// PyTorch uses the official per-class loop, see pytorch/train_step.py). Rounds alternate which side runs first;
/// each round times a block of steps per side, and the report gives the median step of each side and the median
/// over rounds of the per-round ratio Seg ÷ PyTorch, so that drift on a shared machine hits both sides alike.
/// </summary>
public static class TrainStepComparison
{
    const int Batch = 8, Size = 64, Classes = 4;

    public static int Run(string[] args)
    {
        if (args is ["--help"] or ["-h"])
        {
            Console.WriteLine("train-step [--device cpu|cuda|auto] [--threads N] [--rounds N] [--steps N] [--warmup N] [--bins N]\n" +
                              "           [--losses ce,ce_lovasz] [--python PATH (default /usr/bin/python3)] [--script PATH] [--no-pytorch]\n" +
                              "           [--pytorch-onednn same|on|off (default same: as Seg in this process)] [--json FILE]\n" +
                              "The default config's UNet step (forward, backward, AdamW) in Seg and in PyTorch (Seg.Bench/pytorch/train_step.py),\n" +
                              "rounds alternated; prints medians and Seg ÷ PyTorch.");
            return 0;
        }
        var o = Options.Parse(args);
        SegRuntime.Initialize();
        if (o.Threads > 0) set_num_threads(o.Threads);
        var device = SegRuntime.ResolveDevice(o.Device);
        var script = o.Script ?? FindScript();
        Console.WriteLine($"train-step: unet depth 3 width 16, batch {Batch}x{Size}x{Size}, {Classes} classes, AdamW; device {device}, " +
                          $"{get_num_threads()} threads; {o.Rounds} rounds of {o.Steps} steps (+{o.Warmup} warm-up); PyTorch: {(o.PyTorch ? $"{o.Python} {script}" : "off")}; " +
                          $"oneDNN convolutions: Seg {(SegRuntime.OneDnnConvolutions ? "on" : "off")}, PyTorch {(PyTorchUsesOneDnn(o) ? "on" : "off")}");
        var results = new List<object>();
        foreach (var loss in o.Losses)
        {
            var seg = new List<double>();
            var torchMs = new List<double>();
            var ratios = new List<double>();
            string? torchVersion = null;
            for (int r = 0; r < o.Rounds; r++)
            {
                double s = 0, p = 0;
                void RunSeg() => s = Median(SegSteps(loss, device, o.Warmup, o.Steps, o.Bins));
                void RunTorch() { var (ms, v) = TorchSteps(loss, o, script); p = Median(ms); torchVersion = v; }
                if (!o.PyTorch) RunSeg();
                else if (r % 2 == 0) { RunSeg(); RunTorch(); }
                else { RunTorch(); RunSeg(); }
                seg.Add(s);
                if (o.PyTorch) { torchMs.Add(p); ratios.Add(s / p); }
                Console.WriteLine($"  {loss} round {r + 1}: Seg {s:F2} ms" + (o.PyTorch ? $", PyTorch {p:F2} ms, ratio {s / p:F3}" : ""));
            }
            var line = $"{loss}: Seg {Median(seg):F2} ms/step";
            if (o.PyTorch)
                line += $", PyTorch {torchVersion} {Median(torchMs):F2} ms/step, Seg ÷ PyTorch {Median(ratios):F3} (rounds {ratios.Min():F3}–{ratios.Max():F3})";
            Console.WriteLine(line);
            results.Add(new { loss, device = device.ToString(), threads = get_num_threads(), seg_ms = Median(seg),
                pytorch_ms = o.PyTorch ? Median(torchMs) : (double?)null, ratio = o.PyTorch ? Median(ratios) : (double?)null,
                pytorch = torchVersion, rounds = o.Rounds, steps = o.Steps,
                onednn_seg = SegRuntime.OneDnnConvolutions, onednn_pytorch = PyTorchUsesOneDnn(o) });
        }
        if (o.Json is { } json)
        {
            File.WriteAllText(json, JsonSerializer.Serialize(results, new JsonSerializerOptions { WriteIndented = true }));
            Console.WriteLine($"wrote {json}");
        }
        return 0;
    }

    /// <summary>Per-step milliseconds of Seg's step (<paramref name="loss"/>: <c>ce</c> or <c>ce_lovasz</c>; Lovász
    /// histogram <paramref name="bins"/>, 0 exact) after <paramref name="warmup"/> untimed steps: a fresh model and
    /// optimizer each block, as PyTorch's side. <see cref="ThreadChoiceBench"/> times the same step, with
    /// <paramref name="tuner"/> settling the thread count as the trainer does.</summary>
    internal static List<double> SegSteps(string loss, Device device, int warmup, int steps, int bins = 0, ThreadTuner? tuner = null)
    {
        using var outer = NewDisposeScope();
        manual_seed(0);
        var model = ModelFactory.Create("unet", Classes, new ModelOptions { UnetDepth = 3, UnetBaseWidth = 16, UnetBilinear = true });
        model.to(device).train();
        var optimizer = optim.AdamW(model.parameters(), 0.003, weight_decay: 1e-4);
        var terms = new List<LossTerm> { new("cross_entropy", new CrossEntropyLoss(ignoreIndex: 255)) };
        if (loss == "ce_lovasz") terms.Add(new LossTerm("lovasz_softmax", new LovaszSoftmaxLoss(ignoreIndex: 255, bins: bins)));
        var criterion = new CompositeLoss(terms);
        criterion.to(device);
        var images = randn(Batch, 3, Size, Size).to(device);
        var labels = randint(0, Classes, [Batch, Size, Size], dtype: ScalarType.Int64)
            .masked_fill(rand(Batch, Size, Size).lt(0.05), 255).to(device);
        var times = new List<double>();
        for (int i = 0; i < warmup + steps; i++)
        {
            Synchronize(device);
            tuner?.BeforeStep();
            var watch = Stopwatch.StartNew();
            using (NewDisposeScope())
            {
                var value = criterion.forward(model.forward(images), labels);
                optimizer.zero_grad();
                value.backward();
                optimizer.step();
            }
            Synchronize(device);
            tuner?.AfterStep(watch.Elapsed);
            if (i >= warmup) times.Add(watch.Elapsed.TotalMilliseconds);
        }
        return times;
    }

    static void Synchronize(Device device)
    {
        if (device.type == DeviceType.CUDA) cuda.synchronize(device);
    }

    static (List<double> Ms, string Version) TorchSteps(string loss, Options o, string script)
    {
        var psi = new ProcessStartInfo(o.Python)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (var a in new[] { script, "--loss", loss, "--device", o.Device == "auto" ? (cuda.is_available() ? "cuda" : "cpu") : o.Device,
                     "--steps", $"{o.Steps}", "--warmup", $"{o.Warmup}", "--threads", $"{get_num_threads()}",
                     "--mkldnn", PyTorchUsesOneDnn(o) ? "on" : "off" })
            psi.ArgumentList.Add(a);
        // The same heap settings as this process, so that neither side pays page faults the other does not.
        if (HeapTuning.Applied)
            foreach (var (key, value) in HeapTuning.EnvironmentEquivalent) psi.Environment[key] = value;
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {o.Python}");
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"{o.Python} {script} exited with {p.ExitCode}: {stderr.Result.Trim()}");
        using var doc = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]);
        var ms = doc.RootElement.GetProperty("steps_ms").EnumerateArray().Select(e => e.GetDouble()).ToList();
        return (ms, doc.RootElement.GetProperty("torch").GetString() ?? "?");
    }

    /// <summary>Whether the PyTorch side may use oneDNN: by default as Seg does in this process, so that both
    /// sides run the same convolution algorithms (Seg switches oneDNN off on hosts where it breaks).</summary>
    static bool PyTorchUsesOneDnn(Options o) => o.PyTorchOneDnn switch { "on" => true, "off" => false, _ => SegRuntime.OneDnnConvolutions };

    static string FindScript()
    {
        foreach (var root in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
            for (var d = new DirectoryInfo(root); d != null; d = d.Parent)
                foreach (var rel in new[] { "pytorch/train_step.py", "Seg.Bench/pytorch/train_step.py" })
                    if (File.Exists(Path.Combine(d.FullName, rel))) return Path.Combine(d.FullName, rel);
        throw new FileNotFoundException("Seg.Bench/pytorch/train_step.py not found above the app or the working folder; pass --script PATH");
    }


    sealed record Options(string Device, int Threads, int Rounds, int Steps, int Warmup, int Bins, bool PyTorch,
        string Python, string? Script, string[] Losses, string? Json, string PyTorchOneDnn = "same")
    {
        public static Options Parse(string[] args)
        {
            var o = new Options("cpu", 2, 7, 20, 5, 0, true,
                File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3", null, ["ce", "ce_lovasz"], null);
            for (int i = 0; i < args.Length; i++)
            {
                string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"train-step: {args[i]} needs a value");
                int Int() { var v = Next(); return int.TryParse(v, CultureInfo.InvariantCulture, out var n) && n >= 0 ? n : throw new ArgumentException($"train-step: {args[i - 1]} wants a whole number, got '{v}'"); }
                o = args[i] switch
                {
                    "--device" => o with { Device = SegRuntime.ParseDevice(Next()).ToString() },
                    "--threads" => o with { Threads = Int() },
                    "--rounds" => o with { Rounds = Math.Max(1, Int()) },
                    "--steps" => o with { Steps = Math.Max(1, Int()) },
                    "--warmup" => o with { Warmup = Int() },
                    "--bins" => o with { Bins = Int() },
                    "--no-pytorch" => o with { PyTorch = false },
                    "--python" => o with { Python = Next() },
                    "--script" => o with { Script = Next() },
                    "--losses" => o with { Losses = Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) },
                    "--json" => o with { Json = Next() },
                    "--pytorch-onednn" => o with { PyTorchOneDnn = Next() is var v && v is "same" or "on" or "off" ? v : throw new ArgumentException($"train-step: --pytorch-onednn takes same, on or off, got '{v}'") },
                    _ => throw new ArgumentException($"train-step: unknown option '{args[i]}' (options: --device, --threads, --rounds, --steps, --warmup, --bins, --losses ce,ce_lovasz, --python, --script, --no-pytorch, --json, --pytorch-onednn same|on|off)"),
                };
            }
            foreach (var l in o.Losses)
                if (l is not ("ce" or "ce_lovasz")) throw new ArgumentException($"train-step: --losses takes ce and ce_lovasz, got '{l}'");
            return o;
        }
    }
}
