using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Seg.Core;
using Seg.Core.Amp;
using Seg.Core.Native;
using Seg.Core.Optim;
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
/// <c>--precision bf16|fp16</c> runs forward and loss under autocast on both sides (Seg: <see cref="Autocast"/>;
/// PyTorch: <c>torch.autocast</c>), fp16 with a loss scaler; <c>--size</c>, <c>--batch</c>, <c>--unet-depth</c> and
/// <c>--unet-width</c> change the step's shape.
/// </summary>
public static class TrainStepComparison
{
    const int Classes = 4;

    /// <summary>The <c>train-step</c> verb: parses its options from <paramref name="args"/>, runs, and prints the report.</summary>
    public static int Run(string[] args)
    {
        if (args is ["--help"] or ["-h"])
        {
            Console.WriteLine("train-step [--device cpu|cuda|auto] [--threads N] [--rounds N] [--steps N] [--warmup N] [--bins N]\n" +
                              "           [--precision fp32|bf16|fp16] [--size N (64)] [--batch N (8)] [--unet-depth N (3)] [--unet-width N (16)]\n" +
                              "           [--optimizer flat|torchsharp (default flat: FlatAdamW, as the trainer)] [--parts]\n" +
                              "           [--losses ce,ce_lovasz] [--python PATH (default /usr/bin/python3)] [--script PATH] [--no-pytorch]\n" +
                              "           [--pytorch-onednn same|on|off (default same: as Seg in this process)] [--json FILE]\n" +
                              "The default config's UNet step (forward, backward, AdamW) in Seg and in PyTorch (Seg.Bench/pytorch/train_step.py),\n" +
                              "rounds alternated; prints medians and Seg ÷ PyTorch. --parts also times forward, forward + loss,\n" +
                              "forward + loss + backward and the optimizer alone, to show where a step's time goes.");
            return 0;
        }
        var o = Options.Parse(args);
        SegRuntime.Initialize();
        if (o.Threads > 0) set_num_threads(o.Threads);
        var device = SegRuntime.ResolveDevice(o.Device);
        var script = o.Script ?? FindScript();
        Console.WriteLine($"train-step: unet depth {o.Depth} width {o.Width}, batch {o.Batch}x{o.Size}x{o.Size}, {Classes} classes, AdamW, {o.Precision}; device {device}, " +
                          $"{get_num_threads()} threads; {o.Rounds} rounds of {o.Steps} steps (+{o.Warmup} warm-up); PyTorch: {(o.PyTorch ? $"{o.Python} {script}" : "off")}; " +
                          $"oneDNN convolutions: Seg {(SegRuntime.OneDnnConvolutions ? "on" : "off")}, PyTorch {(PyTorchUsesOneDnn(o) ? "on" : "off")}");
        var results = new List<object>();
        foreach (var (loss, part) in o.Losses.SelectMany(l => (o.Parts ? Parts : ["step"]).Select(p => (l, p))))
        {
            var name = part == "step" ? loss : $"{loss} {part}";
            var seg = new List<double>();
            var torchMs = new List<double>();
            var ratios = new List<double>();
            string? torchVersion = null;
            for (int r = 0; r < o.Rounds; r++)
            {
                double s = 0, p = 0;
                void RunSeg() => s = Median(SegSteps(loss, device, o, part: part));
                void RunTorch() { var (ms, v) = TorchSteps(loss, o, script, part); p = Median(ms); torchVersion = v; }
                if (!o.PyTorch) RunSeg();
                else if (r % 2 == 0) { RunSeg(); RunTorch(); }
                else { RunTorch(); RunSeg(); }
                seg.Add(s);
                if (o.PyTorch) { torchMs.Add(p); ratios.Add(s / p); }
                Console.WriteLine($"  {name} round {r + 1}: Seg {s:F2} ms" + (o.PyTorch ? $", PyTorch {p:F2} ms, ratio {s / p:F3}" : ""));
            }
            var line = $"{name}: Seg {Median(seg):F2} ms/step";
            if (o.PyTorch)
                line += $", PyTorch {torchVersion} {Median(torchMs):F2} ms/step, Seg ÷ PyTorch {Median(ratios):F3} (rounds {ratios.Min():F3}–{ratios.Max():F3})";
            Console.WriteLine(line);
            results.Add(new { loss, part, precision = o.Precision, optimizer = o.Optimizer, size = o.Size, batch = o.Batch, unet_depth = o.Depth, unet_width = o.Width,
                device = device.ToString(), threads = get_num_threads(), seg_ms = Median(seg),
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

    /// <summary>The parts <c>--parts</c> times, each on its own: the forward pass; forward and loss; those and
    /// <c>zero_grad</c> + backward; the whole step; the optimizer alone (<c>zero_grad</c> + <c>step</c>).</summary>
    internal static readonly string[] Parts = ["forward", "loss", "backward", "step", "optimizer"];

    /// <summary>Per-step milliseconds of Seg's step (<paramref name="loss"/>: <c>ce</c> or <c>ce_lovasz</c>) as
    /// <paramref name="o"/> sets it up: a fresh model and optimizer each block, as PyTorch's side.
    /// <see cref="ThreadChoiceBench"/> times the same step, with <paramref name="tuner"/> settling the thread count
    /// as the trainer does; <paramref name="part"/> times only part of it (<see cref="Parts"/>).</summary>
    internal static List<double> SegSteps(string loss, Device device, Options o, ThreadTuner? tuner = null, string part = "step")
    {
        using var outer = NewDisposeScope();
        manual_seed(0);
        var model = ModelFactory.Create("unet", Classes, new ModelOptions { UnetDepth = o.Depth, UnetBaseWidth = o.Width, UnetBilinear = true });
        model.to(device).train();
        using optim.Optimizer optimizer = o.Optimizer == "flat"
            ? new FlatAdamW(model.parameters(), 0.003, weight_decay: 1e-4)
            : optim.AdamW(model.parameters(), 0.003, weight_decay: 1e-4);
        var terms = new List<LossTerm> { new("cross_entropy", new SoftmaxCrossEntropyLoss(ignoreIndex: 255)) };
        if (loss == "ce_lovasz") terms.Add(new LossTerm("lovasz_softmax", new LovaszSoftmaxLoss(ignoreIndex: 255, bins: o.Bins)));
        var criterion = new CompositeLoss(terms);
        criterion.to(device);
        var images = randn(o.Batch, 3, o.Size, o.Size).to(device);
        var labels = randint(0, Classes, [o.Batch, o.Size, o.Size], dtype: ScalarType.Int64)
            .masked_fill(rand(o.Batch, o.Size, o.Size).lt(0.05), 255).to(device);
        ScalarType? autocast = o.Precision switch { "bf16" => ScalarType.BFloat16, "fp16" => ScalarType.Float16, _ => null };
        var scaler = o.Precision == "fp16" ? new GradScaler() : null;
        var times = new List<double>();
        if (part == "optimizer")   // gradients to update (TorchSharp's optimizers skip parameters without one)
            using (NewDisposeScope()) criterion.forward(model.forward(images), labels).backward();
        for (int i = 0; i < o.Warmup + o.Steps; i++)
        {
            Synchronize(device);
            tuner?.BeforeStep();
            var watch = Stopwatch.StartNew();
            using (NewDisposeScope())
            {
                if (part == "optimizer")
                {
                    optimizer.zero_grad();
                    optimizer.step();
                }
                else
                {
                    Tensor value;
                    using (autocast is { } dtype ? Autocast.Enable(device.type, dtype) : null)
                    {
                        var logits = model.forward(images);
                        value = part == "forward" ? logits : criterion.forward(logits, labels);
                    }
                    if (part is "backward" or "step")
                    {
                        optimizer.zero_grad();
                        (scaler?.Scale(value) ?? value).backward();
                    }
                    if (part == "step" && scaler is null) optimizer.step();
                    else if (part == "step")
                    {
                        scaler!.Step(optimizer);
                        scaler.Update();
                    }
                }
            }
            Synchronize(device);
            tuner?.AfterStep(watch.Elapsed);
            if (i >= o.Warmup) times.Add(watch.Elapsed.TotalMilliseconds);
        }
        return times;
    }

    static void Synchronize(Device device)
    {
        if (device.type == DeviceType.CUDA) cuda.synchronize(device);
    }

    static (List<double> Ms, string Version) TorchSteps(string loss, Options o, string script, string part)
    {
        var psi = new ProcessStartInfo(o.Python)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (var a in new[] { script, "--loss", loss, "--device", o.Device == "auto" ? (cuda.is_available() ? "cuda" : "cpu") : o.Device,
                     "--steps", $"{o.Steps}", "--warmup", $"{o.Warmup}", "--threads", $"{get_num_threads()}",
                     "--mkldnn", PyTorchUsesOneDnn(o) ? "on" : "off", "--precision", o.Precision, "--size", $"{o.Size}", "--batch", $"{o.Batch}",
                     "--depth", $"{o.Depth}", "--width", $"{o.Width}", "--part", part })
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


    /// <summary>The step's settings (<c>train-step</c>'s options).</summary>
    internal sealed record Options(string Device, int Threads, int Rounds, int Steps, int Warmup, int Bins, bool PyTorch,
        string Python, string? Script, string[] Losses, string? Json, string PyTorchOneDnn = "same",
        string Precision = "fp32", int Size = 64, int Batch = 8, int Depth = 3, int Width = 16, string Optimizer = "flat", bool Parts = false)
    {
        /// <summary>The defaults: the default config's step on the CPU, <paramref name="steps"/> timed after <paramref name="warmup"/>.</summary>
        public static Options Default(int warmup, int steps) => Parse([]) with { Warmup = warmup, Steps = steps };

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
                    "--parts" => o with { Parts = true },
                    "--python" => o with { Python = Next() },
                    "--script" => o with { Script = Next() },
                    "--losses" => o with { Losses = Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) },
                    "--json" => o with { Json = Next() },
                    "--precision" => o with { Precision = Next() is var pr && pr is "fp32" or "bf16" or "fp16" ? pr : throw new ArgumentException($"train-step: --precision takes fp32, bf16 or fp16, got '{pr}'") },
                    "--optimizer" => o with { Optimizer = Next() is var op && op is "flat" or "torchsharp" ? op : throw new ArgumentException($"train-step: --optimizer takes flat or torchsharp, got '{op}'") },
                    "--size" => o with { Size = Math.Max(1, Int()) },
                    "--batch" => o with { Batch = Math.Max(1, Int()) },
                    "--unet-depth" => o with { Depth = Math.Max(1, Int()) },
                    "--unet-width" => o with { Width = Math.Max(1, Int()) },
                    "--pytorch-onednn" => o with { PyTorchOneDnn = Next() is var v && v is "same" or "on" or "off" ? v : throw new ArgumentException($"train-step: --pytorch-onednn takes same, on or off, got '{v}'") },
                    _ => throw new ArgumentException($"train-step: unknown option '{args[i]}' (options: --device, --threads, --rounds, --steps, --warmup, --bins, --losses ce,ce_lovasz, --python, --script, --no-pytorch, --json, --pytorch-onednn same|on|off, --precision, --size, --batch, --unet-depth, --unet-width)"),
                };
            }
            foreach (var l in o.Losses)
                if (l is not ("ce" or "ce_lovasz")) throw new ArgumentException($"train-step: --losses takes ce and ce_lovasz, got '{l}'");
            return o;
        }
    }
}
