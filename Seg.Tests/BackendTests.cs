using System.IO.Compression;
using System.Text.Json;
using System.Xml.Linq;
using Seg.Core;
using Seg.Core.Native;
using Seg.Platform.Native;

namespace Seg.Tests;

/// <summary>
/// The libtorch runtime is the application's choice (SegTorchBackend), never the libraries': their packages name
/// TorchSharp only, as TorchVision's do. Checked on the real artefacts: a fresh `dotnet pack`, and MSBuild's own
/// evaluation of the package references (the CUDA packages are not served here, so nothing is restored).
/// </summary>
[Collection(DotnetBuilds.Name)]
public class BackendTests
{
    [Fact]
    public void LibraryPackagesDependOnTorchSharpOnly()
    {
        var repo = RuntimeTests.RepoRoot();
        var output = Directory.CreateTempSubdirectory("seg-pack-").FullName;
        try
        {
            foreach (var project in new[] { "Seg.Platform", "Seg.Core", "Seg.Models", "Seg.Data", "Seg.Onnx" })
            {
                var (code, stdout, stderr) = RuntimeTests.Run("dotnet",
                    $"pack \"{Path.Combine(repo, project)}\" -o \"{output}\" -nodeReuse:false -p:UseSharedCompilation=false", repo);
                Assert.True(code == 0, stdout + stderr);
                var package = Directory.EnumerateFiles(output, project + ".*.nupkg").Single();
                using var zip = ZipFile.OpenRead(package);
                using var nuspec = zip.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal)).Open();
                var ids = XDocument.Load(nuspec).Descendants().Where(e => e.Name.LocalName == "dependency")
                    .Select(e => (string)e.Attribute("id")!).ToHashSet();
                switch (project)
                {
                    case "Seg.Platform":
                        // It carries the native patch step to every consumer, and references nothing.
                        Assert.Empty(ids);
                        Assert.Contains(zip.Entries, e => e.FullName == "buildTransitive/Seg.Platform.targets");
                        break;
                    case "Seg.Core": Assert.Contains("TorchSharp", ids); Assert.Contains("Seg.Platform", ids); break;
                    case "Seg.Onnx": Assert.Contains("Seg.Platform", ids); Assert.DoesNotContain("TorchSharp", ids); break;
                    default: Assert.Contains("Seg.Core", ids); break;
                }
                var runtimes = ids.Where(id => id.StartsWith("TorchSharp-", StringComparison.OrdinalIgnoreCase)
                                               || id.StartsWith("libtorch", StringComparison.OrdinalIgnoreCase)).ToList();
                Assert.True(runtimes.Count == 0, $"{project}'s package depends on a libtorch runtime: {string.Join(", ", runtimes)}");
            }
        }
        finally { Directory.Delete(output, recursive: true); }
    }

    [Theory]
    [InlineData(null, "TorchSharp-cpu")]
    [InlineData("cpu", "TorchSharp-cpu")]
    [InlineData("cuda", "TorchSharp-cuda-linux")]
    [InlineData("external", "TorchSharp")]
    public void BackendPicksTheRuntimePackage(string? backend, string expected)
    {
        if (!OperatingSystem.IsLinux()) return; // cuda means TorchSharp-cuda-windows on Windows
        foreach (var app in new[] { "Seg.Train", "Seg.Bench", "Seg.Tests" })
        {
            var torchPackages = TorchPackageReferences(app, backend);
            Assert.Equal([expected], torchPackages);
        }
    }

    [Fact]
    public void LibrariesReferenceTorchSharpWhateverTheBackend()
    {
        foreach (var backend in new[] { "cpu", "cuda", "external" })
            Assert.Equal(["TorchSharp"], TorchPackageReferences("Seg.Core", backend));
    }

    [Fact]
    public void UnknownBackendFailsTheBuildListingTheThree()
    {
        var repo = RuntimeTests.RepoRoot();
        var (code, stdout, stderr) = RuntimeTests.Run("dotnet",
            "msbuild Seg.Train -t:SegCheckTorchBackend -p:SegTorchBackend=gpu -nologo -nodeReuse:false", repo);
        Assert.NotEqual(0, code);
        var text = stdout + stderr;
        Assert.Contains("SegTorchBackend='gpu'", text);
        foreach (var choice in new[] { "cpu", "cuda", "external" }) Assert.Contains(choice + " (", text);
    }

    /// <summary>The TorchSharp* package references MSBuild evaluates for <paramref name="project"/> (no restore).</summary>
    static string[] TorchPackageReferences(string project, string? backend)
    {
        var repo = RuntimeTests.RepoRoot();
        var property = backend is null ? "" : $" -p:SegTorchBackend={backend}";
        var (code, stdout, stderr) = RuntimeTests.Run("dotnet", $"msbuild {project} -getItem:PackageReference{property} -nologo", repo);
        Assert.True(code == 0, stdout + stderr);
        using var json = JsonDocument.Parse(stdout);
        return json.RootElement.GetProperty("Items").GetProperty("PackageReference").EnumerateArray()
            .Select(i => i.GetProperty("Identity").GetString()!)
            .Where(id => id.StartsWith("TorchSharp", StringComparison.Ordinal)).Order().ToArray();
    }
}

/// <summary>What a bad SEG_LIBTORCH_DIR or a CUDA request on a CPU build says (in-process: nothing is loaded
/// from a folder that fails these checks).</summary>
public class RuntimeErrorTests
{
    [Fact]
    public void MissingExternalFolderNamesItAndTheVariable()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"seg-no-such-{Guid.NewGuid():N}");
        var e = Assert.Throws<NativeLoadException>(() => ExternalLibTorch.Load(dir));
        Assert.Contains(dir, e.Message);
        Assert.Contains("does not exist", e.Message);
        Assert.Contains(SegRuntime.LibTorchDirVariable, e.Message);
        Assert.Contains("Fix:", e.Message);
    }

    [Fact]
    public void FolderWithoutLibTorchNamesTheMissingFileAndTheNestedLibFolder()
    {
        var dir = Directory.CreateTempSubdirectory("seg-libtorch-").FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(dir, "lib"));
            File.WriteAllText(Path.Combine(dir, "lib", "libtorch.so"), "");
            var e = Assert.Throws<NativeLoadException>(() => ExternalLibTorch.Load(dir));
            Assert.Contains($"'{dir}', which has no libtorch.so", e.Message);
            Assert.Contains(Path.Combine(dir, "lib"), e.Message); // points at where it really is
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void UnloadableLibTorchGivesTheLoadersReason()
    {
        var dir = Directory.CreateTempSubdirectory("seg-libtorch-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "libtorch.so"), new string('x', 4096)); // long enough to be read as a header
            var e = Assert.Throws<NativeLoadException>(() => ExternalLibTorch.Load(dir));
            Assert.Contains(Path.Combine(dir, "libtorch.so"), e.Message);
            Assert.Contains("failed to load", e.Message);
            Assert.Contains("invalid ELF header", e.Message); // dlerror's own words
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void CudaOnTheCpuBuildSaysToRebuildNotThatTheMachineLacksCuda()
    {
        Assert.Equal("cpu", SegRuntime.Backend); // Seg.Tests is built with the default backend
        foreach (var name in new[] { "cuda", "cuda:1" })
        {
            var e = Assert.Throws<DeviceUnavailableException>(() => SegRuntime.ResolveDevice(name));
            Assert.Contains($"'{name}' asked for", e.Message);
            Assert.Contains("CPU runtime", e.Message);
            Assert.Contains("-p:SegTorchBackend=cuda", e.Message);
            Assert.Contains("SegTorchBackend=external", e.Message);
            Assert.DoesNotContain("not available on this machine", e.Message);
        }
    }

    [Theory]
    [InlineData("cpu")]
    [InlineData("auto")]
    public void CpuAndAutoResolveOnACpuBuild(string name) =>
        Assert.Equal(TorchSharp.DeviceType.CPU, SegRuntime.ResolveDevice(name).type);

    [Theory]
    [InlineData("gpu")]
    [InlineData("cuda:")]
    [InlineData("cuda:-1")]
    [InlineData("cuda:x")]
    [InlineData("cuda: 1")]
    [InlineData("CPU")]
    [InlineData("cuda:\u0663")]   // an Arabic-Indic three: a digit to Regex's \d, not to a device index
    [InlineData("cuda:99999999999")]
    public void MalformedDeviceNamesAreRefused(string name)
    {
        var e = Assert.Throws<DeviceNameException>(() => SegRuntime.ResolveDevice(name));
        Assert.Contains($"'{name}'", e.Message);
        Assert.Equal(name, e.Name);
        Assert.Equal(name, Assert.Throws<DeviceNameException>(() => SegRuntime.ParseDevice(name)).Name);
    }

    [Theory]
    [InlineData("auto", null, 0, "auto")]
    [InlineData("cpu", TorchSharp.DeviceType.CPU, 0, "cpu")]
    [InlineData("cuda", TorchSharp.DeviceType.CUDA, 0, "cuda:0")]
    [InlineData("cuda:3", TorchSharp.DeviceType.CUDA, 3, "cuda:3")]
    public void DeviceNamesParseWithoutAskingTheRuntime(string name, TorchSharp.DeviceType? type, int index, string canonical)
    {
        var request = SegRuntime.ParseDevice(name);
        Assert.Equal((type, index, canonical), (request.Type, request.Index, request.ToString()));
    }
}

/// <summary>Tests that run `dotnet build`/`pack`/`msbuild` on the repository's projects run one at a time.</summary>
[CollectionDefinition(Name)]
public sealed class DotnetBuilds { public const string Name = "dotnet builds"; }

/// <summary>On hosts that hide their cache sizes, oneDNN's convolutions are switched off (they crash or give NaN
/// there); elsewhere nothing changes. Read back through ATen's own getter.</summary>
public class HiddenCacheTopologyTests
{
    [Fact]
    public unsafe void OneDnnIsOffExactlyWhereTheHostHidesItsCaches()
    {
        SegRuntime.Initialize();
        if (!OperatingSystem.IsLinux()) return;
        Assert.True(System.Runtime.InteropServices.NativeLibrary.TryLoad("libtorch_cpu.so", out var lib));
        var context = ((delegate* unmanaged<IntPtr>)System.Runtime.InteropServices.NativeLibrary.GetExport(lib, "_ZN2at13globalContextEv"))();
        var mkldnnOn = ((delegate* unmanaged<IntPtr, byte>)System.Runtime.InteropServices.NativeLibrary.GetExport(lib, "_ZNK2at7Context17userEnabledMkldnnEv"))(context) != 0;
        var expectedOff = Environment.GetEnvironmentVariable("SEG_ONEDNN") switch { "0" => true, "1" => false, _ => HiddenCacheTopology.Detected };
        Assert.Equal(!expectedOff, mkldnnOn);
        Assert.Equal(expectedOff, SegRuntime.Note is not null);
        // Independent sign of a hidden topology on Linux: the kernel exports no cache levels either.
        if (HiddenCacheTopology.Detected)
            Assert.False(Directory.Exists("/sys/devices/system/cpu/cpu0/cache/index0"));
    }
}
