using Seg.Core.Native;
using Seg.Train.Config;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Train.Training;

/// <summary><c>train.cudnn_benchmark</c> and <c>train.tf32</c>: libtorch's process-wide GPU speed switches, both on by
/// default on CUDA (cuDNN autotuning pays off for the fixed crop sizes of training). On the CPU they are accepted
/// and change nothing.</summary>
public static class GpuSwitches
{
    /// <summary>Sets the switches for a run on <paramref name="device"/>.</summary>
    /// <exception cref="NotSupportedException">On CUDA, a libtorch that lacks the at::Context setters.</exception>
    public static void Apply(TrainLoopConfig train, Device device)
    {
        if (device.type != DeviceType.CUDA) return;
        TorchBackends.CudnnBenchmark = train.CudnnBenchmark ?? true;
        var tf32 = train.Tf32 ?? true;
        TorchBackends.AllowTF32CuDnn = tf32;
        TorchBackends.AllowTF32CuBlas = tf32;
    }
}
