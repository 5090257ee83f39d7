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

    /// <summary>Threads of one CPU run: 0 (ONNX Runtime's default, one per physical core) up to
    /// <see cref="MaxThreads"/>.</summary>
    public int Threads { get; init; }

    /// <summary>The most <see cref="Threads"/> accepted: the logical processors this process may use
    /// (<see cref="Environment.ProcessorCount"/>, which respects a container's CPU quota). More threads than that
    /// only compete for the same cores, and each ONNX Runtime thread reserves its own stack and buffers.</summary>
    public static int MaxThreads => Environment.ProcessorCount;

    /// <summary>The memory budget of one image, in bytes: the decode (when the segmenter reads the file) plus the
    /// input tensor, logits, probabilities and labels it allocates per pixel (<see cref="OnnxSegmenter.PipelineBytesPerPixel"/>),
    /// and a sliding window's buffers. An image or window over it is refused before anything is allocated.
    /// Default: 1 GiB.</summary>
    public long MaxImageBytes { get; init; } = Imaging.ImageFiles.DefaultMaxBytes;

    /// <summary>Accept NaN or infinite logits from the model: such pixels get NaN probabilities and the label −1
    /// (no class; painted in the ignore colour), and <see cref="ClassProbabilities.NonFinitePixels"/> counts them.
    /// False (default): a prediction with any is an error that says how many pixels.</summary>
    public bool AllowNonFiniteLogits { get; init; }

    /// <summary>Whole image or sliding window, and flip; null takes the settings stored in the file
    /// (the training config's <c>eval</c> section), or <see cref="OnnxInferenceSettings.WholeImage"/>.</summary>
    public OnnxInferenceSettings? Inference { get; init; }

    /// <summary>Called last on the session options: any other execution provider (DirectML, OpenVINO, CoreML…),
    /// graph optimisation level, profiling.</summary>
    public Action<SessionOptions>? ConfigureSession { get; init; }
}
