using Microsoft.ML.OnnxRuntime;

namespace Seg.Onnx;

/// <summary>Where ONNX Runtime runs the model.</summary>
public enum OnnxExecutionProvider
{
    /// <summary>ONNX Runtime's CPU kernels (every ONNX Runtime package).</summary>
    Cpu,
    /// <summary>NVIDIA CUDA: needs the Microsoft.ML.OnnxRuntime.Gpu package (build Seg.Onnx with
    /// <c>-p:SegOnnxRuntime=cuda</c>), CUDA 12 and cuDNN 9 on the machine.</summary>
    Cuda,
    /// <summary>NVIDIA TensorRT (falls back to CUDA, then CPU, per node): Microsoft.ML.OnnxRuntime.Gpu and TensorRT.</summary>
    TensorRT,
}

/// <summary>Options of <see cref="OnnxSegmenter.Load"/>.</summary>
public sealed record OnnxSegmenterOptions
{
    /// <summary>The execution provider (CPU by default).</summary>
    public OnnxExecutionProvider ExecutionProvider { get; init; } = OnnxExecutionProvider.Cpu;

    /// <summary>GPU index for CUDA and TensorRT.</summary>
    public int DeviceId { get; init; }

    /// <summary>Threads of one CPU run (0: ONNX Runtime's default, one per physical core).</summary>
    public int Threads { get; init; }

    /// <summary>Whole image or sliding window, and flip; null takes the settings stored in the file
    /// (the training config's <c>eval</c> section), or <see cref="OnnxInferenceSettings.WholeImage"/>.</summary>
    public OnnxInferenceSettings? Inference { get; init; }

    /// <summary>Called last on the session options: any other execution provider (DirectML, OpenVINO, CoreML…),
    /// graph optimisation level, profiling.</summary>
    public Action<SessionOptions>? ConfigureSession { get; init; }
}
