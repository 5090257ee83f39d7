using System.Runtime.InteropServices;
using Seg.Core.Native;
using TorchSharp;

namespace Seg.Core;

/// <summary>
/// Start-up for anything that uses TorchSharp through Seg: call <see cref="Initialize"/> once before the first
/// TorchSharp call (Seg.Train does it first thing).
/// </summary>
public static class SegRuntime
{
    static readonly object Gate = new();
    static bool initialized;

    /// <summary>
    /// Makes TorchSharp's native libraries loadable on this host and loads them. Idempotent and thread-safe.
    /// On hosts whose libstdc++ lacks <c>GLIBCXX_3.4.32</c> (Debian 12) it marks that spurious version need of
    /// <c>libLibTorchSharp.so</c> weak in the application's native folders (see <see cref="GlibcxxCompat"/>);
    /// elsewhere it changes nothing.
    /// </summary>
    /// <exception cref="NativeLoadException">A native library still cannot be loaded; the message names the
    /// library, the missing dependency and the fix.</exception>
    public static void Initialize()
    {
        if (Volatile.Read(ref initialized)) return;
        lock (Gate)
        {
            if (initialized) return;
            if (OperatingSystem.IsLinux() && !GlibcxxCompat.HostHasRequiredVersion && PatchingAllowed)
                foreach (var dir in NativeSearchDirectories())
                    foreach (var file in Directory.EnumerateFiles(dir, GlibcxxCompat.ShimFileName))
                        TryPatch(file);
            try
            {
                torch.InitializeDeviceType(DeviceType.CPU);
            }
            catch (Exception e) when (e is not NativeLoadException)
            {
                throw Diagnose(e);
            }
            Volatile.Write(ref initialized, true);
        }
    }

    /// <summary>Set the environment variable <c>SEG_NATIVE_PATCH=0</c> to forbid start-up patching (files stay untouched).</summary>
    static bool PatchingAllowed => Environment.GetEnvironmentVariable("SEG_NATIVE_PATCH") != "0";

    static void TryPatch(string file)
    {
        try { GlibcxxCompat.PatchFile(file); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A read-only install: leave it; Diagnose explains if loading then fails.
        }
    }

    /// <summary>The directories the .NET host probes for native libraries (from deps.json), then the app folder.</summary>
    internal static IEnumerable<string> NativeSearchDirectories()
    {
        var dirs = (AppContext.GetData("NATIVE_DLL_SEARCH_DIRECTORIES") as string ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Append(AppContext.BaseDirectory)
            .Append(Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native"))
            .Append(Path.Combine(AppContext.BaseDirectory, "cpu"));
        return dirs.Select(d => Path.GetFullPath(d)).Distinct().Where(Directory.Exists);
    }

    // TorchSharp reports every load failure as a missing package reference; find the real cause by loading
    // each native library ourselves and keeping the dynamic loader's own message.
    static NativeLoadException Diagnose(Exception original)
    {
        var names = new[] { "libc10.so", "libtorch_cpu.so", "libtorch.so", GlibcxxCompat.ShimFileName };
        var files = NativeSearchDirectories()
            .SelectMany(d => names.Select(n => Path.Combine(d, n)))
            .Where(File.Exists).ToList();
        if (files.Count == 0)
            return new NativeLoadException(
                $"TorchSharp's native libraries ({string.Join(", ", names)}) were not found in " +
                $"{string.Join(", ", NativeSearchDirectories())}. Fix: reference the 'TorchSharp-cpu' package " +
                "(0.107.0) from the application project so that its natives are copied to the output.", original);
        foreach (var file in files)
        {
            if (NativeLibrary.TryLoad(file, out _)) continue;
            string reason;
            try { NativeLibrary.Load(file); reason = "unknown"; }
            catch (Exception e)
            {
                // .NET wraps the dynamic loader's message in advice text; its last line is dlerror() itself.
                reason = e.Message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)[^1];
            }
            var fix = reason.Contains("GLIBCXX_", StringComparison.Ordinal) || reason.Contains("CXXABI_", StringComparison.Ordinal)
                ? $"the host's {GlibcxxCompat.HostLibraryPath ?? GlibcxxCompat.LibStdCxx} is older than the library asks for. " +
                  $"Seg marks the spurious {GlibcxxCompat.RequiredVersion} need of {GlibcxxCompat.ShimFileName} weak, " +
                  "but could not here (read-only file, or SEG_NATIVE_PATCH=0): rebuild so that the Seg.Core build step " +
                  "patches the output, make the file writable, or install a libstdc++ from GCC 13 or newer."
                : "install the missing shared library it names (on Debian: apt-get install the package providing it).";
            return new NativeLoadException($"Native library '{file}' failed to load: {reason}. Fix: {fix}", original);
        }
        return new NativeLoadException(
            $"TorchSharp failed to initialise although its native libraries load: {original.Message}", original);
    }
}

/// <summary>A native library that TorchSharp needs could not be loaded; the message says which, why, and the fix.</summary>
public sealed class NativeLoadException(string message, Exception inner) : Exception(message, inner);
