using System.Runtime.InteropServices;
using Seg.Platform.Native;

namespace Seg.Core.Native;

/// <summary>
/// Loads libtorch from a folder outside the application (<c>SegTorchBackend=external</c>), before TorchSharp's
/// own loader runs. Why this works: TorchSharp's shim names <c>libtorch.so</c> (and the CUDA loader asks for
/// <c>libtorch_cuda.so</c>) by soname, and the dynamic loader satisfies a soname from the libraries already in the
/// process, so the copies loaded here by full path are the ones TorchSharp binds to.
/// </summary>
internal static class ExternalLibTorch
{
    public const string LibTorch = "libtorch.so", LibTorchCuda = "libtorch_cuda.so";

    /// <summary>Why <see cref="LibTorchCuda"/> from the external folder failed to load; null when it loaded or
    /// the folder has none (a CPU-only libtorch).</summary>
    public static string? CudaLoadError { get; private set; }

    /// <summary>The external folder when one was loaded.</summary>
    public static string? LoadedFrom { get; private set; }

    public static void Load(string directory)
    {
        var dir = Path.GetFullPath(directory);
        const string fix = "Fix: point " + SegRuntime.LibTorchDirVariable + " at the lib folder of a libtorch 2.10 " +
                           "(a libtorch zip's libtorch/lib, or python3 -c \"import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))\").";
        if (!Directory.Exists(dir))
            throw new NativeLoadException($"{SegRuntime.LibTorchDirVariable} names the folder '{dir}', which does not exist. {fix}");
        var libtorch = Path.Combine(dir, LibTorch);
        if (!File.Exists(libtorch))
        {
            var nested = Path.Combine(dir, "lib", LibTorch);
            var hint = File.Exists(nested) ? $" It is in '{Path.GetDirectoryName(nested)}': name that folder." : "";
            throw new NativeLoadException(
                $"{SegRuntime.LibTorchDirVariable} names the folder '{dir}', which has no {LibTorch}.{hint} {fix}");
        }
        try
        {
            NativeLibrary.Load(libtorch);
        }
        catch (DllNotFoundException e)
        {
            throw new NativeLoadException($"'{libtorch}' (from {SegRuntime.LibTorchDirVariable}) failed to load: {NativeLoadException.LoaderReason(e)}. {fix}", e);
        }
        var cuda = Path.Combine(dir, LibTorchCuda);
        if (File.Exists(cuda) && !NativeLibrary.TryLoad(cuda, out _))
        {
            // A CUDA libtorch on a machine without a usable driver still trains on the CPU; a CUDA request
            // reports this reason (CudaDiagnosis).
            try { NativeLibrary.Load(cuda); }
            catch (DllNotFoundException e) { CudaLoadError = $"'{cuda}' failed to load: {NativeLoadException.LoaderReason(e)}"; }
        }
        LoadedFrom = dir;
    }
}
