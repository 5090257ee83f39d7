using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace Seg.Core.Native;

/// <summary>
/// Keeps libtorch off oneDNN's convolutions on CPUs whose cache topology is hidden. Some hypervisors answer the
/// cache-topology CPUID leaves (4 on Intel, 0x8000001D on AMD) with zeros. oneDNN sizes its convolution blocking from
/// those cache sizes: on such a host its backward convolution divides by zero (SIGFPE kills the process, seen in
/// <c>brgemm_convolution_bwd_utils::brg_blocking_t::est_eff_1x1</c> of libtorch 2.10 on an AMD EPYC VM) and other
/// kernels return NaN gradients. Limiting oneDNN's ISA does not avoid it. ATen's own convolutions do not depend on
/// the cache sizes, so on such hosts <see cref="Apply"/> switches ATen's oneDNN and NNPACK paths off (the flags
/// <c>torch.backends.mkldnn.enabled</c> and <c>torch.backends.nnpack.enabled</c> of PyTorch). NNPACK goes too
/// because it reads the same leaves, refuses to start and would print a warning at every convolution.
/// <c>SEG_ONEDNN=1</c> keeps oneDNN on regardless; <c>SEG_ONEDNN=0</c> switches it off on any host.
/// </summary>
internal static class HiddenCacheTopology
{
    /// <summary>True when this x86 CPU reports no cache levels through the leaf oneDNN reads.</summary>
    public static bool Detected { get; } = Detect();

    static bool Detect()
    {
        if (!X86Base.IsSupported) return false;
        var (maxLeaf, vendorB, vendorC, vendorD) = X86Base.CpuId(0, 0);
        bool NoCaches(int leaf) => (X86Base.CpuId(leaf, 0).Eax & 0x1F) == 0;   // cache type 0 in sub-leaf 0: none
        bool intelLeafEmpty = maxLeaf < 4 || NoCaches(4);
        bool amd = vendorB == 0x68747541 && vendorD == 0x69746e65 && vendorC == 0x444d4163;   // "AuthenticAMD"
        if (!amd) return intelLeafEmpty;
        // AMD describes its caches in 0x8000001D (leaf 4 is reserved there). Seen on an EPYC VM: both empty, and
        // the topology-extensions bit that announces 0x8000001D cleared, although the leaf exists.
        var maxExtended = (uint)X86Base.CpuId(unchecked((int)0x80000000), 0).Eax;
        return maxExtended >= 0x8000001D && intelLeafEmpty && NoCaches(unchecked((int)0x8000001D));
    }

    /// <summary>True once <see cref="Apply"/> has switched oneDNN and NNPACK off.</summary>
    public static bool OneDnnOff { get; private set; }

    /// <summary>Switches oneDNN and NNPACK off in ATen's global context when the host needs it (or
    /// <c>SEG_ONEDNN=0</c> asks). Returns a one-line note saying so, or null when nothing changed.</summary>
    public static unsafe string? Apply()
    {
        var setting = Environment.GetEnvironmentVariable("SEG_ONEDNN");
        bool disable = setting switch { "0" => true, "1" => false, _ => Detected };
        if (!disable || !OperatingSystem.IsLinux()) return null;
        if (!NativeLibrary.TryLoad("libtorch_cpu.so", out var torchCpu)) return null;
        // at::globalContext() returns at::Context&; the setters are member functions taking (this, bool), which
        // the System V calling convention passes like a C function's two arguments.
        if (!NativeLibrary.TryGetExport(torchCpu, "_ZN2at13globalContextEv", out var globalContext)
            || !NativeLibrary.TryGetExport(torchCpu, "_ZN2at7Context20setUserEnabledMkldnnEb", out var setMkldnn)
            || !NativeLibrary.TryGetExport(torchCpu, "_ZN2at7Context20setUserEnabledNNPACKEb", out var setNnpack))
            return null;
        var context = ((delegate* unmanaged<IntPtr>)globalContext)();
        ((delegate* unmanaged<IntPtr, byte, void>)setMkldnn)(context, 0);
        ((delegate* unmanaged<IntPtr, byte, void>)setNnpack)(context, 0);
        OneDnnOff = true;
        return setting == "0"
            ? "oneDNN and NNPACK convolutions are off (SEG_ONEDNN=0); libtorch uses its own, slower ones."
            : "this CPU hides its cache sizes (CPUID cache-topology leaf is empty, as on some VMs), where oneDNN's " +
              "convolutions crash or give NaN gradients, so Seg uses libtorch's own, slower ones (SEG_ONEDNN=1 forces oneDNN).";
    }
}
