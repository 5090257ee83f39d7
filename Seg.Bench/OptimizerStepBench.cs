using BenchmarkDotNet.Attributes;
using Seg.Core;
using Seg.Core.Optim;
using Seg.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Seg.Bench;

/// <summary>
/// The optimizer's share of a training step on the CPU, 2 threads: <c>zero_grad()</c> and <c>step()</c> (plus
/// gradient clipping where <see cref="Clip"/>) over the parameters of a UNet, TorchSharp's per-tensor loop against
/// Seg's flat buffers (<see cref="FlatSGD"/>, <see cref="FlatAdamW"/>). The default config's UNet (depth 3, width
/// 16: 44 tensors, 0.49 M weights, so launches dominate) and depth 4 / width 64 (56 tensors, 31 M weights, so arithmetic does).
/// </summary>
[MinColumn]
[SimpleJob(launchCount: 1, warmupCount: 3, iterationCount: 15)]
public class OptimizerStepBench
{
    nn.Module<Tensor, Tensor> model = null!;
    optim.Optimizer optimizer = null!;

    /// <summary><c>sgd</c> (momentum 0.9, weight decay) or <c>adamw</c>.</summary>
    [Params("sgd", "adamw")]
    public string Type { get; set; } = "sgd";

    /// <summary><c>torchsharp</c> (TorchSharp's SGD/AdamW) or <c>flat</c> (Seg's).</summary>
    [Params("torchsharp", "flat")]
    public string Implementation { get; set; } = "flat";

    /// <summary>UNet depth and base width: <c>3x16</c> (the default config) or <c>4x64</c>.</summary>
    [Params("3x16", "4x64")]
    public string Unet { get; set; } = "3x16";

    /// <summary>Whether the step clips the gradient norm first (<c>train.grad_clip</c>).</summary>
    [Params(false, true)]
    public bool Clip { get; set; }

    /// <summary>Builds the model, gives every parameter a gradient, and the optimizer.</summary>
    [GlobalSetup]
    public void Setup()
    {
        SegRuntime.Initialize();
        torch.set_num_threads(2);
        manual_seed(0);
        var parts = Unet.Split('x');
        model = ModelFactory.Create("unet", 4, new ModelOptions { UnetDepth = int.Parse(parts[0]), UnetBaseWidth = int.Parse(parts[1]), UnetBilinear = true });
        foreach (var p in model.parameters()) p.grad = randn_like(p);
        var parameters = model.parameters();
        optimizer = (Type, Implementation) switch
        {
            ("sgd", "flat") => new FlatSGD(parameters, 0.01, momentum: 0.9, weight_decay: 5e-4),
            ("sgd", _) => optim.SGD(parameters, 0.01, momentum: 0.9, weight_decay: 5e-4),
            ("adamw", "flat") => new FlatAdamW(parameters, 1e-3, weight_decay: 1e-4),
            _ => optim.AdamW(parameters, 1e-3, weight_decay: 1e-4),
        };
    }

    /// <summary>What the trainer does around backward: zero the gradients, (clip,) step. The gradients stay zero
    /// after the first call, which costs the arithmetic the same.</summary>
    [Benchmark]
    public void ZeroGradClipStep()
    {
        using var scope = NewDisposeScope();
        optimizer.zero_grad();
        if (Clip && optimizer is IFlatOptimizer flat) flat.Flat.ClipGradNorm(1.0);
        else if (Clip) nn.utils.clip_grad_norm_(model.parameters(), 1.0);
        optimizer.step();
    }

    /// <summary>Disposes the optimizer and the model.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        optimizer.Dispose();
        model.Dispose();
    }
}
