using System.Runtime.InteropServices;

namespace Seg.Core.Native;

/// <summary>
/// Makes libtorch's OpenMP workers spin only briefly between parallel regions, then sleep
/// (<c>GOMP_SPINCOUNT=1000</c>). libgomp's workers otherwise busy-wait for the next region for up to 300,000
/// iterations; when the cores are shared (other processes, or a CPU quota) that spinning takes the time the thread
/// doing the work needs, and a 2-thread step became slower than a 1-thread one. Sleeping at once
/// (<c>OMP_WAIT_POLICY=PASSIVE</c>) avoids that but pays a wake-up for every operation: on a quiet 2-core VM the
/// default UNet step took 104–119 ms so against 90–92 ms with a spin of 1000, while with one or two busy processes
/// beside it the two were equal (and the default spin 20–120 % slower). libgomp reads the variables once, when it
/// is loaded, so this must run before the first TorchSharp call; it leaves the user's own
/// <c>OMP_WAIT_POLICY</c> or <c>GOMP_SPINCOUNT</c> alone.
/// </summary>
internal static partial class OpenMpWaitPolicy
{
    public const string Variable = "OMP_WAIT_POLICY", SpinCountVariable = "GOMP_SPINCOUNT";

    /// <summary>The spin count Seg sets: libgomp's own choice when threads outnumber cores.</summary>
    public const string DefaultSpinCount = "1000";

    /// <summary>Sets <c>GOMP_SPINCOUNT=1000</c> in the process environment (the native one, which libgomp reads,
    /// not only .NET's copy) unless either variable is set. Returns whether it set it.</summary>
    public static bool ApplyDefault()
    {
        if (!OperatingSystem.IsLinux()) return false;
        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable(Variable))
            || !string.IsNullOrEmpty(Environment.GetEnvironmentVariable(SpinCountVariable))) return false;
        try
        {
            if (setenv(SpinCountVariable, DefaultSpinCount, 0) != 0) return false;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
        Environment.SetEnvironmentVariable(SpinCountVariable, DefaultSpinCount);   // child processes and later reads agree
        return true;
    }

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int setenv(string name, string value, int overwrite);
}
