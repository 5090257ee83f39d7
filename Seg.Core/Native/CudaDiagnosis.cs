using System.Runtime.InteropServices;
using TorchSharp;
using Seg.Platform.Native;

namespace Seg.Core.Native;

/// <summary>
/// Initialises CUDA explicitly and, when that fails, tells which of the two causes it is: this process has no CUDA
/// libtorch (a CPU build, or a CPU-only external libtorch), or a CUDA libtorch is there but no GPU or driver
/// answers. TorchSharp's implicit loader falls back to the CPU without a word, so <c>cuda.is_available()</c>
/// alone cannot tell these apart.
/// </summary>
internal static class CudaDiagnosis
{
    public static void Initialize(string requested)
    {
        try
        {
            torch.InitializeDeviceType(DeviceType.CUDA);
            if (torch.cuda.is_available()) return;
            throw Explain(requested, null);
        }
        catch (Exception e) when (e is not DeviceUnavailableException)
        {
            throw Explain(requested, e);
        }
    }

    static DeviceUnavailableException Explain(string requested, Exception? error)
    {
        var loaded = MappedLibraries.Find("libtorch_cuda").FirstOrDefault();
        var backend = SegRuntime.Backend;
        if (loaded is null)
        {
            // No CUDA libtorch in the process: either none is shipped, or the one shipped failed to load.
            var shipped = ShippedCudaLibrary();
            if (shipped is not null)
                return new DeviceUnavailableException(
                    $"'{requested}' asked for: the CUDA runtime is there ({shipped.Value.Path}) but it failed to load: " +
                    $"{shipped.Value.Reason}. Fix: install or repair the NVIDIA driver (libcuda.so.1; check with nvidia-smi), " +
                    "or use device cpu.", error);
            var external = ExternalLibTorch.LoadedFrom;
            return new DeviceUnavailableException(backend == "external" || external is not null
                ? $"'{requested}' asked for, but the libtorch in '{external}' ({SegRuntime.LibTorchDirVariable}) is built for the CPU only " +
                  $"(it has no {ExternalLibTorch.LibTorchCuda}). Fix: point {SegRuntime.LibTorchDirVariable} at a CUDA build's lib folder " +
                  "(e.g. a CUDA PyTorch's torch/lib), or use device cpu."
                : $"'{requested}' asked for, but this build of Seg ships the CPU runtime of libtorch (SegTorchBackend={backend ?? "not set: the application references a CPU runtime package"}). " +
                  "Fix: rebuild with -p:SegTorchBackend=cuda (TorchSharp-cuda-linux, CUDA 12.8 bundled: only an NVIDIA driver is needed), " +
                  $"or with -p:SegTorchBackend=external and {SegRuntime.LibTorchDirVariable} set to a CUDA libtorch's lib folder; or use device cpu.",
                error);
        }
        var detail = error is null ? "torch.cuda.is_available() is false" : FirstLine(error.Message);
        return new DeviceUnavailableException(
            $"'{requested}' asked for: the CUDA runtime is loaded ({loaded}) but no GPU or driver answered: {detail}{DriverState()}. " +
            "Fix: check the GPU with nvidia-smi (driver installed, device visible to this process or container, " +
            "CUDA_VISIBLE_DEVICES not empty), or use device cpu.", error);
    }

    /// <summary>A CUDA libtorch the application carries (or SEG_LIBTORCH_DIR names) that did not load, with why.</summary>
    static (string Path, string Reason)? ShippedCudaLibrary()
    {
        if (ExternalLibTorch.CudaLoadError is { } externalError)
            return (Path.Combine(ExternalLibTorch.LoadedFrom ?? "", ExternalLibTorch.LibTorchCuda), externalError);
        foreach (var dir in NativeDirectories.Search())
        {
            var file = Path.Combine(dir, ExternalLibTorch.LibTorchCuda);
            if (!File.Exists(file)) continue;
            try { NativeLibrary.Load(file); }
            catch (DllNotFoundException e) { return (file, NativeLoadException.LoaderReason(e)); }
        }
        return null;
    }

    /// <summary>What the driver side shows: whether libcuda.so.1 loads and the NVIDIA device nodes exist.</summary>
    static string DriverState()
    {
        if (!OperatingSystem.IsLinux()) return "";
        string driver;
        try { NativeLibrary.Free(NativeLibrary.Load("libcuda.so.1")); driver = "libcuda.so.1 loads"; }
        catch (DllNotFoundException e) { driver = "libcuda.so.1 does not load: " + NativeLoadException.LoaderReason(e); }
        var nodes = File.Exists("/dev/nvidiactl") ? "/dev/nvidiactl exists" : "no /dev/nvidiactl";
        return $" ({driver}; {nodes})";
    }

    static string FirstLine(string text) => text.Split('\n', 2)[0].Trim();
}
