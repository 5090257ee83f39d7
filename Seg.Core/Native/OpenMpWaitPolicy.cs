using System.Runtime.InteropServices;

namespace Seg.Core.Native;

/// <summary>
/// Makes libtorch's OpenMP workers sleep, not spin, between parallel regions (<c>OMP_WAIT_POLICY=PASSIVE</c>).
/// libgomp's workers otherwise busy-wait for the next region for up to a few milliseconds; when the cores are
/// shared (other processes, or a CPU quota) that spinning takes the time the thread doing the work needs, and a
/// 2-thread step became slower than a 1-thread one. libgomp reads the variable once, when it is loaded, so this
/// must run before the first TorchSharp call; it leaves the user's own <c>OMP_WAIT_POLICY</c> or
/// <c>GOMP_SPINCOUNT</c> alone.
/// </summary>
internal static partial class OpenMpWaitPolicy
{
    public const string Variable = "OMP_WAIT_POLICY", SpinCountVariable = "GOMP_SPINCOUNT";

    /// <summary>Sets <c>OMP_WAIT_POLICY=PASSIVE</c> in the process environment (the native one, which libgomp reads,
    /// not only .NET's copy) unless either variable is set. Returns whether it set it.</summary>
    public static bool ApplyDefault()
    {
        if (!OperatingSystem.IsLinux()) return false;
        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable(Variable))
            || !string.IsNullOrEmpty(Environment.GetEnvironmentVariable(SpinCountVariable))) return false;
        try
        {
            if (setenv(Variable, "PASSIVE", 0) != 0) return false;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
        Environment.SetEnvironmentVariable(Variable, "PASSIVE");   // child processes and later reads agree
        return true;
    }

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int setenv(string name, string value, int overwrite);
}
