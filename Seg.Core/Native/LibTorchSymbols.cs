using System.Runtime.InteropServices;
using Seg.Platform.Native;

namespace Seg.Core.Native;

/// <summary>
/// Functions of libtorch's C++ API that TorchSharp does not bind, found by their Itanium-mangled names in the
/// <c>libtorch_cpu</c> that TorchSharp loaded (the CPU, CUDA and external builds all carry them there). Their
/// parameters are C-compatible: <c>c10::DeviceType</c> and <c>c10::ScalarType</c> are one-byte enums, <c>bool</c>
/// is one byte, and a member function takes its object pointer first.
/// </summary>
internal static class LibTorchSymbols
{
    static readonly Lazy<(IntPtr Handle, string Path)> Library = new(Open, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>The path of the libtorch library the symbols come from (for messages).</summary>
    public static string LibraryPath => Library.Value.Path;

    /// <summary>The address of <paramref name="mangledName"/>.</summary>
    /// <exception cref="NotSupportedException">This libtorch does not export it; the message names the symbol,
    /// what it is, and the library searched.</exception>
    public static IntPtr Require(string mangledName, string readableName)
    {
        var (handle, path) = Library.Value;
        if (handle != IntPtr.Zero && NativeLibrary.TryGetExport(handle, mangledName, out var address)) return address;
        throw new NotSupportedException(
            $"libtorch does not export {readableName} ({mangledName}); searched {path}. Seg's mixed-precision and " +
            "backend switches need a libtorch 2.10 or later built with the Itanium C++ ABI (Linux, macOS).");
    }


    // The libtorch_cpu already in the process (TorchSharp loads it through libtorch.so): dlopen of its full path
    // returns that same copy. Where /proc/self/maps is not available, ask the loader by name.
    static (IntPtr, string) Open()
    {
        SegRuntime.Initialize();
        foreach (var path in MappedLibraries.Find("libtorch_cpu."))
            if (NativeLibrary.TryLoad(path, out var handle)) return (handle, path);
        foreach (var name in new[] { "libtorch_cpu.so", "libtorch_cpu.dylib", "torch_cpu" })
            if (NativeLibrary.TryLoad(name, out var handle)) return (handle, name);
        return (IntPtr.Zero, "no libtorch_cpu mapped into this process");
    }
}
