using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using Seg.Core;
using Seg.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Bench;

/// <summary>
/// Training-step cost of each <see cref="ModelFactory"/> model on the CPU: forward + mean-square loss + backward
/// on a batch of 2 images of 256×256 in train mode, reported per image (OperationsPerInvoke = 2), 2 threads.
/// Macro-benchmark settings (Monitoring: one invocation per iteration, 1 warm-up, 5 measured) keep big models short.
/// </summary>
[SimpleJob(RunStrategy.Monitoring, launchCount: 1, warmupCount: 1, iterationCount: 5)]
public class ModelForwardBackwardBench
{
    const int Batch = 2;

    /// <summary>The <c>ModelFactory</c> name timed: the original ten, then one model per zoo family (classifier
    /// backbones, torchvision segmentation heads, encoder–decoder pairs); the other depths of a family scale roughly
    /// with their FLOPs (docs/models.md).</summary>
    [Params("resnet18", "resnet34", "resnet50", "resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101",
        "deeplabv3plus_resnet50", "deeplabv3plus_resnet101", "unet", "unet_resnet34",
        "mobilenet_v3_large", "efficientnet_b0", "convnext_tiny", "resnext50_32x4d",
        "fcn_resnet50", "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large",
        "fpn_resnet34", "unet_efficientnet_b0", "deeplabv3plus_mobilenet_v3_large", "fpn_convnext_tiny")]
    public string Model { get; set; } = "resnet18";

    nn.Module<Tensor, Tensor>? model;
    Tensor? input;

    /// <summary>Builds the model in train mode and a random batch.</summary>
    [GlobalSetup]
    public void Setup()
    {
        SegRuntime.Initialize();
        torch.set_num_threads(2);
        torch.manual_seed(0);
        bool classifier = Model.StartsWith("resnet") || Model.StartsWith("resnext") || Model.StartsWith("mobilenet") || Model.StartsWith("efficientnet") || Model.StartsWith("convnext");
        model = ModelFactory.Create(Model, classifier ? 1000 : 21);
        model.train();
        input = randn(Batch, 3, 256, 256);
    }

    /// <summary>Forward, mean-square loss and backward; timed per image.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public void ForwardBackward()
    {
        using var scope = NewDisposeScope();
        model!.zero_grad();
        model.forward(input!).square().mean().backward();
    }

    /// <summary>Disposes the model and the batch.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        input?.Dispose();
        model?.Dispose();
    }
}
