using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Engines;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Microsoft.ML.OnnxRuntime;
using Seg.Core;
using Seg.Models;
using Seg.Models.Export;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Bench;

/// <summary>
/// Deployment inference on the CPU, side by side in one process: TorchSharp eval (the baseline) against ONNX
/// Runtime running the file <see cref="OnnxExporter"/> wrote from the same model, one 512×512 image, 2 threads for
/// both (torch.set_num_threads(2); ORT intra-op 2, sequential). The Ratio column is ORT's time over TorchSharp's.
/// In process (no generated project to build: that build alone outlasts BenchmarkDotNet's 2-minute limit on a busy
/// 2-core machine), one invocation per iteration, 1 warm-up and 5 measured, with room for slow single runs (a
/// TorchSharp UNet forward took over 3 minutes on the shared machine).
/// Run: <c>dotnet run -c Release --project Seg.Bench -- --filter '*OnnxInferenceBench*'</c>.
/// </summary>
[Config(typeof(InProcessMonitoring))]
public class OnnxInferenceBench
{
    sealed class InProcessMonitoring : ManualConfig
    {
        public InProcessMonitoring() => AddJob(Job.Default.WithStrategy(RunStrategy.Monitoring).WithLaunchCount(1)
            .WithWarmupCount(1).WithIterationCount(5).WithToolchain(new InProcessEmitToolchain(TimeSpan.FromMinutes(60), logOutput: true)));
    }

    /// <summary>The <c>ModelFactory</c> name timed.</summary>
    [Params("unet", "deeplabv3plus_resnet50")]
    public string Model { get; set; } = "unet";

    nn.Module<Tensor, Tensor>? model;
    Tensor? input;
    InferenceSession? session;
    OrtValue? ortInput;
    RunOptions? runOptions;
    string? file;

    /// <summary>Builds the model, exports it to ONNX and opens an ONNX Runtime session on it.</summary>
    [GlobalSetup]
    public void Setup()
    {
        SegRuntime.Initialize();
        torch.set_num_threads(2);
        manual_seed(0);
        model = ModelFactory.Create(Model, 21, new ModelOptions { UnetBaseWidth = 64 });
        model.eval();
        input = randn(1, 3, 512, 512);
        file = Path.Combine(Path.GetTempPath(), $"seg-bench-{Model}-{Environment.ProcessId}.onnx");
        OnnxExporter.Export(model, file, new OnnxExportOptions());
        var options = new SessionOptions { IntraOpNumThreads = 2, InterOpNumThreads = 1, ExecutionMode = ExecutionMode.ORT_SEQUENTIAL };
        session = new InferenceSession(file, options);
        ortInput = OrtValue.CreateTensorValueFromMemory(input.data<float>().ToArray(), [1, 3, 512, 512]);
        runOptions = new RunOptions();
    }

    /// <summary>The model's eval-mode forward in TorchSharp: the baseline.</summary>
    [Benchmark(Baseline = true)]
    public void TorchSharpEval()
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        model!.forward(input!);
    }

    /// <summary>The exported file in ONNX Runtime's CPU provider.</summary>
    [Benchmark]
    public void OnnxRuntimeCpu()
    {
        using var outputs = session!.Run(runOptions!, [OnnxExporter.InputName], [ortInput!], [OnnxExporter.LogitsName]);
    }

    /// <summary>Disposes the session, the model and the temporary file.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        session?.Dispose();
        ortInput?.Dispose();
        runOptions?.Dispose();
        input?.Dispose();
        model?.Dispose();
        if (file is not null) File.Delete(file);
    }
}
