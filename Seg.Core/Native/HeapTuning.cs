using System.Runtime.InteropServices;

namespace Seg.Core.Native;

/// <summary>
/// Keeps glibc's heap from handing freed memory back to the kernel at every training step. libtorch's CPU
/// allocator takes each activation, gradient and im2col buffer from malloc and frees it within the step; with
/// glibc's defaults (buffers from 128 KiB up mapped and unmapped one by one, the heap top trimmed once 128 KiB lie
/// free there) every step returns those megabytes to the kernel and page-faults them in again, zero-filled. On the
/// 2-core development VM that cost more than the arithmetic: 60 steps of the default config took 35–41 s user and
/// 15–19 s system time untuned, 17.5 s user and 1.6 s system with the heap kept (the same settings given as
/// <c>MALLOC_MMAP_THRESHOLD_</c>, <c>MALLOC_TRIM_THRESHOLD_</c> and <c>MALLOC_TOP_PAD_</c>). The price is that the
/// process keeps its peak heap until it exits, which a training run reaches in its first steps anyway.
/// The user's own glibc settings (<c>GLIBC_TUNABLES</c>, <c>MALLOC_*_</c>) win; other C libraries are left alone.
/// Seg's applications call <see cref="Apply"/> first thing; a library user's training program may do the same
/// (it changes the whole process's malloc, so <see cref="SegRuntime.Initialize"/> does not do it for them).
/// </summary>
public static partial class HeapTuning
{
    const int TrimThreshold = -1, TopPad = -2, MmapThreshold = -3;   // mallopt parameters, <malloc.h>

    // Buffers up to 32 MiB (the most glibc accepts) from the heap, never trim it (the largest value mallopt takes),
    // and grow it 256 MiB at a time: each as the mallopt parameter and its environment variable.
    static readonly (int Parameter, string Variable, int Value)[] Settings =
    [
        (MmapThreshold, "MALLOC_MMAP_THRESHOLD_", 32 << 20),
        (TrimThreshold, "MALLOC_TRIM_THRESHOLD_", int.MaxValue),
        (TopPad, "MALLOC_TOP_PAD_", 256 << 20),
    ];

    /// <summary>Applies the settings on Linux with glibc, unless the environment sets malloc tunables.
    /// Returns whether they were applied.</summary>
    public static bool Apply()
    {
        if (!OperatingSystem.IsLinux()) return false;
        foreach (var name in Settings.Select(s => s.Variable).Prepend("GLIBC_TUNABLES"))
            if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable(name))) return false;
        try
        {
            bool all = true;
            foreach (var (parameter, _, value) in Settings) all &= mallopt(parameter, value) == 1;
            Applied = all;
            return Applied;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;   // not glibc (musl has no mallopt)
        }
    }

    /// <summary>The same settings as environment variables, for a child process (e.g. the PyTorch side of a
    /// benchmark, so that both sides run with the same heap).</summary>
    public static IReadOnlyDictionary<string, string> EnvironmentEquivalent { get; } =
        Settings.ToDictionary(s => s.Variable, s => s.Value.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>Whether <see cref="Apply"/> changed this process's heap settings.</summary>
    public static bool Applied { get; private set; }

    [LibraryImport("libc", EntryPoint = "mallopt")]
    private static partial int mallopt(int param, int value);
}
