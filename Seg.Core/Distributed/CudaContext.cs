using System.Runtime.InteropServices;

namespace Seg.Core.Distributed;

/// <summary>
/// Makes a GPU current on the calling thread through the CUDA driver API (<c>libcuda.so.1</c>, installed with the
/// NVIDIA driver): its primary context, the one the CUDA runtime and libtorch use. NCCL binds a communicator to
/// the device current at <c>ncclCommInitRank</c>, and stream 0 means the current device's default stream; TorchSharp
/// has no <c>torch.cuda.set_device</c>, and a thread's current device is 0 until someone sets it, so rank r on
/// <c>cuda:r</c> must set it before each NCCL call.
/// </summary>
/// <remarks>Written against the driver API's documentation, not run: no GPU where it was written.</remarks>
internal static unsafe class CudaContext
{
    static readonly object Gate = new();
    static delegate* unmanaged<uint, int> cuInit;
    static delegate* unmanaged<int*, int, int> cuDeviceGet;
    static delegate* unmanaged<IntPtr*, int, int> cuDevicePrimaryCtxRetain;
    static delegate* unmanaged<IntPtr, int> cuCtxSetCurrent;
    static readonly Dictionary<int, IntPtr> Contexts = [];

    /// <summary>Makes device <paramref name="index"/>'s primary context current on this thread.</summary>
    public static void MakeCurrent(int index)
    {
        IntPtr context;
        lock (Gate)
        {
            if (cuInit is null) Load();
            if (!Contexts.TryGetValue(index, out context))
            {
                int device;
                Check(cuDeviceGet(&device, index), "cuDeviceGet");
                Check(cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain");
                Contexts[index] = context;
            }
        }
        Check(cuCtxSetCurrent(context), "cuCtxSetCurrent");
    }

    static void Load()
    {
        if (!NativeLibrary.TryLoad("libcuda.so.1", out var handle))
            throw new DistributedException("CUDA tensors are reduced with NCCL, which needs the NVIDIA driver's libcuda.so.1, and it cannot be loaded");
        IntPtr Export(string name) => NativeLibrary.TryGetExport(handle, name, out var a) ? a
            : throw new DistributedException($"libcuda.so.1 has no symbol {name}: the NVIDIA driver is too old");
        cuDeviceGet = (delegate* unmanaged<int*, int, int>)Export("cuDeviceGet");
        cuDevicePrimaryCtxRetain = (delegate* unmanaged<IntPtr*, int, int>)Export("cuDevicePrimaryCtxRetain");
        cuCtxSetCurrent = (delegate* unmanaged<IntPtr, int>)Export("cuCtxSetCurrent");
        var init = (delegate* unmanaged<uint, int>)Export("cuInit");
        Check(init(0), "cuInit");
        cuInit = init;
    }

    static void Check(int result, string function)
    {
        if (result != 0) throw new DistributedException($"{function} failed with CUresult {result}");
    }
}
