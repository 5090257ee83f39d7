using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Amp;

/// <summary>Whether a device computes bfloat16 natively, so that bf16 autocast is worth it there: NVIDIA GPUs of
/// compute capability 8.0 or later (Ampere), and CPUs with AVX512-BF16 or AMX-BF16 instructions.</summary>
public static class BFloat16Support
{
    /// <summary>Whether <paramref name="device"/> has native bfloat16 arithmetic, and what that was judged on
    /// (for the line a run prints).</summary>
    public static (bool Native, string Reason) Check(Device device) => device.type switch
    {
        DeviceType.CPU => Cpu(),
        DeviceType.CUDA => Cuda(device.index < 0 ? 0 : device.index),
        _ => (false, $"{device.type} is not checked for bfloat16 support"),
    };

    static (bool, string) Cpu()
    {
        var flags = CpuFlags();
        if (flags is null) return (false, "CPU flags unknown (no /proc/cpuinfo)");
        foreach (var flag in new[] { "amx_bf16", "avx512_bf16" })
            if (flags.Contains(flag)) return (true, $"CPU has {flag}");
        return (false, "CPU has neither avx512_bf16 nor amx_bf16");
    }

    static HashSet<string>? CpuFlags()
    {
        if (!OperatingSystem.IsLinux() || !File.Exists("/proc/cpuinfo")) return null;
        var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal));
        return line is null ? null : [.. line[(line.IndexOf(':') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries)];
    }

    // The CUDA driver API (libcuda, C ABI) answers the compute capability; TorchSharp 0.107 does not expose it.
    static unsafe (bool, string) Cuda(int ordinal)
    {
        if (!NativeLibrary.TryLoad(OperatingSystem.IsWindows() ? "nvcuda.dll" : "libcuda.so.1", out var driver))
            return (false, "CUDA driver library not found");
        try
        {
            if (!NativeLibrary.TryGetExport(driver, "cuInit", out var init) ||
                !NativeLibrary.TryGetExport(driver, "cuDeviceGet", out var get) ||
                !NativeLibrary.TryGetExport(driver, "cuDeviceGetAttribute", out var attribute))
                return (false, "CUDA driver lacks cuDeviceGetAttribute");
            const int computeCapabilityMajor = 75, computeCapabilityMinor = 76;   // CUdevice_attribute
            int device, major, minor;
            if (((delegate* unmanaged<uint, int>)init)(0) != 0 ||
                ((delegate* unmanaged<int*, int, int>)get)(&device, ordinal) != 0 ||
                ((delegate* unmanaged<int*, int, int, int>)attribute)(&major, computeCapabilityMajor, device) != 0 ||
                ((delegate* unmanaged<int*, int, int, int>)attribute)(&minor, computeCapabilityMinor, device) != 0)
                return (false, $"CUDA device {ordinal}: compute capability unknown");
            return (major >= 8, $"CUDA device {ordinal} has compute capability {major}.{minor}");
        }
        finally
        {
            NativeLibrary.Free(driver);
        }
    }
}
