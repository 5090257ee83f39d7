using System.Runtime.InteropServices;
using Seg.Core.Native;
using TorchSharp;
using Seg.Platform.Native;

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
    /// Unless the environment sets <c>OMP_WAIT_POLICY</c> or <c>GOMP_SPINCOUNT</c>, it first sets
    /// <c>GOMP_SPINCOUNT=1000</c>, so that libtorch's idle OpenMP workers soon sleep instead of spinning on cores that
    /// other work (or a CPU quota) shares; this is why it must run before the first TorchSharp call.
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
                foreach (var dir in NativeDirectories.Search())
                    foreach (var file in Directory.EnumerateFiles(dir, GlibcxxCompat.ShimFileName))
                        TryPatch(file);
            // Before libtorch, and with it libgomp, is loaded: libgomp reads its wait policy once, at load.
            OpenMpWaitPolicy.ApplyDefault();
            if (ExternalLibTorchDirectory is { } external) ExternalLibTorch.Load(external);
            try
            {
                torch.InitializeDeviceType(DeviceType.CPU);
            }
            catch (Exception e) when (e is not NativeLoadException)
            {
                throw Diagnose(e);
            }
            Note = HiddenCacheTopology.Apply();
            Volatile.Write(ref initialized, true);
        }
    }

    /// <summary>A one-line note on how Seg set libtorch up for this host, or null when nothing needs saying:
    /// on CPUs that hide their cache sizes (some VMs) oneDNN's convolutions crash or give NaN gradients, so
    /// <see cref="Initialize"/> switches libtorch to its own convolutions and says so here. Applications print it.</summary>
    public static string? Note { get; private set; }

    /// <summary>Whether libtorch may use oneDNN (and NNPACK) convolutions in this process: false after
    /// <see cref="Initialize"/> switched them off (see <see cref="Note"/>). Benchmarks against PyTorch use it to
    /// compare the same convolution algorithms.</summary>
    public static bool OneDnnConvolutions => !HiddenCacheTopology.OneDnnOff;

    /// <summary>The application's libtorch runtime as built (<c>SegTorchBackend</c>: <c>cpu</c>, <c>cuda</c> or
    /// <c>external</c>), read from its runtimeconfig.json; null for an application built outside Seg's build
    /// (a library user's own project), which chose its runtime package itself.</summary>
    public static string? Backend => AppContext.GetData("Seg.TorchBackend") as string;

    /// <summary>The environment variable that names the folder of an external libtorch (<c>libtorch.so</c> and
    /// its companions), for example a PyTorch installation's <c>torch/lib</c>.</summary>
    public const string LibTorchDirVariable = "SEG_LIBTORCH_DIR";

    /// <summary>The folder libtorch is loaded from at start-up, or null when the application ships its own
    /// runtime. Builds with <c>SegTorchBackend=external</c> require <see cref="LibTorchDirVariable"/>; an
    /// application built outside Seg's build uses it when it is set; <c>cpu</c> and <c>cuda</c> builds ignore it,
    /// because two libtorch copies in one process do not work.</summary>
    public static string? ExternalLibTorchDirectory
    {
        get
        {
            var dir = Environment.GetEnvironmentVariable(LibTorchDirVariable);
            return Backend switch
            {
                "external" => string.IsNullOrWhiteSpace(dir)
                    ? throw new NativeLoadException(
                        $"This build of Seg loads libtorch from outside (SegTorchBackend=external), but {LibTorchDirVariable} " +
                        $"is not set. Fix: export {LibTorchDirVariable}=<folder with libtorch.so>, for example " +
                        $"{LibTorchDirVariable}=$(python3 -c \"import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))\"), " +
                        "or rebuild with -p:SegTorchBackend=cpu or cuda to ship a runtime.")
                    : dir,
                null when !string.IsNullOrWhiteSpace(dir) => dir,
                _ => null,
            };
        }
    }

    /// <summary>
    /// Parses a device name: <c>auto</c>, <c>cpu</c>, <c>cuda</c> (device 0) or <c>cuda:N</c> (N in ASCII digits),
    /// case-sensitive, as the config's <c>train.device</c>, the CLI's <c>--device</c> and Seg.Bench take it. Pure:
    /// it asks no runtime whether the device works (<see cref="ResolveDevice"/> does).
    /// </summary>
    /// <exception cref="DeviceNameException"><paramref name="name"/> is none of those forms; the exception names it.</exception>
    public static DeviceRequest ParseDevice(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name == "auto") return DeviceRequest.Auto;
        if (name == "cpu") return new DeviceRequest(DeviceType.CPU, 0);
        if (name == "cuda") return new DeviceRequest(DeviceType.CUDA, 0);
        var digits = name.StartsWith("cuda:", StringComparison.Ordinal) ? name[5..] : "";
        return digits.Length > 0 && digits.All(char.IsAsciiDigit) && int.TryParse(digits, out var index)
            ? new DeviceRequest(DeviceType.CUDA, index)
            : throw new DeviceNameException(name);
    }

    /// <summary>
    /// The device that <paramref name="name"/> asks for (see <see cref="ParseDevice"/>); <c>auto</c> is CUDA device
    /// 0 when CUDA works, else the CPU. A CUDA request initialises CUDA explicitly, so that the loader's or
    /// driver's own reason comes through.
    /// </summary>
    /// <exception cref="DeviceUnavailableException">The device cannot be used; the message says whether this build
    /// lacks a CUDA runtime, no GPU or driver answered, or the index is out of range, and what to do.</exception>
    /// <exception cref="DeviceNameException"><paramref name="name"/> is not one of the forms above.</exception>
    public static torch.Device ResolveDevice(string name)
    {
        var request = ParseDevice(name);
        Initialize();
        if (request.IsAuto) return torch.cuda.is_available() ? new torch.Device(DeviceType.CUDA, 0) : torch.CPU;
        if (request.Type == DeviceType.CPU) return torch.CPU;
        CudaDiagnosis.Initialize(name);
        var count = torch.cuda.device_count();
        if (request.Index >= count)
            throw new DeviceUnavailableException(
                $"'{name}' asked for, but this machine has {count} CUDA device{(count == 1 ? "" : "s")} " +
                $"(cuda:0{(count > 1 ? $" to cuda:{count - 1}" : "")}). Fix: pick one of those, or use cuda for the first.");
        return new torch.Device(DeviceType.CUDA, request.Index);
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

    // TorchSharp reports every load failure as a missing package reference; find the real cause by loading
    // each native library ourselves and keeping the dynamic loader's own message.
    static NativeLoadException Diagnose(Exception original)
    {
        var names = new[] { "libc10.so", "libtorch_cpu.so", "libtorch.so", GlibcxxCompat.ShimFileName };
        var dirs = NativeDirectories.Search().Concat(ExternalLibTorch.LoadedFrom is { } d ? [d] : Array.Empty<string>()).ToList();
        var files = dirs.SelectMany(d => names.Select(n => Path.Combine(d, n))).Where(File.Exists).ToList();
        if (files.Count == 0)
            return new NativeLoadException(
                $"TorchSharp's native libraries ({string.Join(", ", names)}) were not found in " +
                $"{string.Join(", ", dirs)}. Fix: build the application with Seg's SegTorchBackend (cpu, cuda or external " +
                $"with {LibTorchDirVariable}), or reference a runtime package ('TorchSharp-cpu' or 'TorchSharp-cuda-linux' " +
                "0.107.0) from the application project so that its natives are copied to the output.", original);
        foreach (var file in files)
        {
            if (NativeLibrary.TryLoad(file, out _)) continue;
            var reason = NativeLoadException.LoaderReason(file);
            var fix = reason.Contains("GLIBCXX_", StringComparison.Ordinal) || reason.Contains("CXXABI_", StringComparison.Ordinal)
                ? $"the host's {GlibcxxCompat.HostLibraryPath ?? GlibcxxCompat.LibStdCxx} is older than the library asks for. " +
                  $"Seg marks the spurious {GlibcxxCompat.RequiredVersion} need of {GlibcxxCompat.ShimFileName} weak, " +
                  "but could not here (read-only file, or SEG_NATIVE_PATCH=0): rebuild so that the Seg.Core build step " +
                  "patches the output, make the file writable, or install a libstdc++ from GCC 13 or newer."
                : reason.Contains("undefined symbol", StringComparison.Ordinal) && ExternalLibTorch.LoadedFrom is { } external
                ? $"TorchSharp 0.107's shim was built against libtorch 2.10.0, and the libtorch in '{external}' " +
                  $"({LibTorchDirVariable}) lacks a symbol it needs, so it is another version. Use a libtorch 2.10.x; " +
                  $"'ldd -r {file}' with LD_LIBRARY_PATH={external} lists every missing symbol."
                : "install the missing shared library it names (on Debian: apt-get install the package providing it).";
            return new NativeLoadException($"Native library '{file}' failed to load: {reason}. Fix: {fix}", original);
        }
        return new NativeLoadException(
            $"TorchSharp failed to initialise although its native libraries load: {original.Message}", original);
    }
}

/// <summary>A parsed device name (<see cref="SegRuntime.ParseDevice"/>): <c>auto</c>, the CPU, or CUDA device
/// <see cref="Index"/>.</summary>
/// <param name="Type">CPU or CUDA; null for <c>auto</c>.</param>
/// <param name="Index">The CUDA device index (0 for the CPU and auto).</param>
public readonly record struct DeviceRequest(DeviceType? Type, int Index)
{
    /// <summary><c>auto</c>: CUDA device 0 when CUDA works, else the CPU.</summary>
    public static DeviceRequest Auto => new(null, 0);

    /// <summary>True for <c>auto</c>.</summary>
    public bool IsAuto => Type is null;

    /// <summary>The name in its canonical form: <c>auto</c>, <c>cpu</c> or <c>cuda:N</c>.</summary>
    public override string ToString() => Type switch
    {
        null => "auto",
        DeviceType.CPU => "cpu",
        _ => $"cuda:{Index}",
    };
}

/// <summary>A device name that is not <c>auto</c>, <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c>; <see cref="Name"/> is
/// the name as given.</summary>
public sealed class DeviceNameException : ArgumentException
{
    /// <summary>The forms a device name takes, for messages and closest-value suggestions.</summary>
    public static IReadOnlyList<string> Forms { get; } = ["auto", "cpu", "cuda", "cuda:N"];

    /// <summary>An exception naming <paramref name="name"/>.</summary>
    public DeviceNameException(string name)
        : base($"device '{name}' is not one of {string.Join(", ", Forms)}", "name") => Name = name;

    /// <summary>The rejected name.</summary>
    public string Name { get; }
}

/// <summary>A requested device (CUDA) cannot be used; the message says which case it is and the fix.</summary>
public sealed class DeviceUnavailableException : Exception
{
    /// <summary>A device failure explained by <paramref name="message"/>.</summary>
    public DeviceUnavailableException(string message, Exception? inner = null) : base(message, inner) { }
}
