namespace Seg.Core.Native;

/// <summary>
/// libtorch's process-wide speed switches for NVIDIA GPUs, in its <c>at::Context</c> (PyTorch's
/// <c>torch.backends.cudnn.benchmark</c>, <c>torch.backends.cudnn.allow_tf32</c> and
/// <c>torch.backends.cuda.matmul.allow_tf32</c>). The flags are global, not per thread, and only CUDA kernels read
/// them: on the CPU setting them changes nothing.
/// </summary>
public static class TorchBackends
{
    /// <summary>cuDNN autotuning: the first convolution of each input shape tries cuDNN's algorithms and keeps the
    /// fastest (a slower first step per shape, faster later ones for fixed shapes).</summary>
    /// <exception cref="NotSupportedException">The loaded libtorch lacks <c>at::Context::setBenchmarkCuDNN</c> (or its getter).</exception>
    public static unsafe bool CudnnBenchmark
    {
        get => ((delegate* unmanaged<IntPtr, byte>)BenchmarkCuDNN.Value)(Context.Value) != 0;
        set => ((delegate* unmanaged<IntPtr, byte, void>)SetBenchmarkCuDNN.Value)(Context.Value, value ? (byte)1 : (byte)0);
    }

    /// <summary>Whether cuDNN convolutions may use TF32 tensor cores (float32 data, 10-bit mantissa products) on
    /// GPUs of compute capability 8.0 or later.</summary>
    /// <exception cref="NotSupportedException">The loaded libtorch lacks <c>at::Context::setAllowTF32CuDNN</c> (or its getter).</exception>
    public static unsafe bool AllowTF32CuDnn
    {
        // The getter takes an std::optional<at::Float32Op> (trivially copyable, two bytes, so passed in a
        // register); an empty optional (both bytes zero) asks for the cuDNN flag itself.
        get => ((delegate* unmanaged<IntPtr, ushort, byte>)AllowTF32CuDNN.Value)(Context.Value, 0) != 0;
        set => ((delegate* unmanaged<IntPtr, byte, void>)SetAllowTF32CuDNN.Value)(Context.Value, value ? (byte)1 : (byte)0);
    }

    /// <summary>Whether cuBLAS float32 matrix products may use TF32 tensor cores.</summary>
    /// <exception cref="NotSupportedException">The loaded libtorch lacks <c>at::Context::setAllowTF32CuBLAS</c> (or its getter).</exception>
    public static unsafe bool AllowTF32CuBlas
    {
        get => ((delegate* unmanaged<IntPtr, byte>)AllowTF32CuBLAS.Value)(Context.Value) != 0;
        set => ((delegate* unmanaged<IntPtr, byte, void>)SetAllowTF32CuBLAS.Value)(Context.Value, value ? (byte)1 : (byte)0);
    }

    // Each function is resolved on its first use (a libtorch that lacks a getter still lets its setter work); a
    // missing one throws NotSupportedException on every use.
    static unsafe readonly Lazy<IntPtr> Context = new(() =>
        ((delegate* unmanaged<IntPtr>)LibTorchSymbols.Require("_ZN2at13globalContextEv", "at::globalContext()"))());
    static readonly Lazy<IntPtr>
        BenchmarkCuDNN = Symbol("_ZNK2at7Context14benchmarkCuDNNEv", "at::Context::benchmarkCuDNN()"),
        SetBenchmarkCuDNN = Symbol("_ZN2at7Context17setBenchmarkCuDNNEb", "at::Context::setBenchmarkCuDNN(bool)"),
        AllowTF32CuDNN = Symbol("_ZNK2at7Context14allowTF32CuDNNESt8optionalINS_9Float32OpEE", "at::Context::allowTF32CuDNN(std::optional<Float32Op>)"),
        SetAllowTF32CuDNN = Symbol("_ZN2at7Context17setAllowTF32CuDNNEb", "at::Context::setAllowTF32CuDNN(bool)"),
        AllowTF32CuBLAS = Symbol("_ZNK2at7Context15allowTF32CuBLASEv", "at::Context::allowTF32CuBLAS()"),
        SetAllowTF32CuBLAS = Symbol("_ZN2at7Context18setAllowTF32CuBLASEb", "at::Context::setAllowTF32CuBLAS(bool)");

    static Lazy<IntPtr> Symbol(string mangled, string readable) =>
        new(() => LibTorchSymbols.Require(mangled, readable), LazyThreadSafetyMode.ExecutionAndPublication);
}
