using System.Diagnostics;
using Seg.Core;
using TorchSharp;
using Seg.Platform.Native;

namespace Seg.Tests;

[Collection(DotnetBuilds.Name)]
public class RuntimeTests
{
    [Fact]
    public void TorchSharpLoadsAndComputes()
    {
        SegRuntime.Initialize();
        SegRuntime.Initialize(); // idempotent
        using var a = torch.arange(6, dtype: torch.float64).reshape(2, 3);
        Assert.Equal(15.0, a.sum().item<double>());
    }

    [Fact]
    public void InitializeIsThreadSafe()
    {
        Parallel.For(0, 8, _ => SegRuntime.Initialize());
        using var t = torch.ones(3);
        Assert.Equal(3f, t.sum().item<float>());
    }

    static string PristineShim()
    {
        var root = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
                   ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        return Path.Combine(root, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", GlibcxxCompat.ShimFileName);
    }

    [Fact]
    public void PatchMarksExactlyTheOneVersionNeedWeak()
    {
        var original = PristineShim();
        Assert.True(File.Exists(original), $"expected TorchSharp's shim in the NuGet cache at {original}");
        var copy = Path.Combine(Path.GetTempPath(), $"seg-shim-{Guid.NewGuid():N}.so");
        File.Copy(original, copy);
        try
        {
            Assert.True(GlibcxxCompat.HasStrongNeed(copy));
            Assert.True(GlibcxxCompat.PatchFile(copy));
            Assert.False(GlibcxxCompat.HasStrongNeed(copy));
            Assert.False(GlibcxxCompat.PatchFile(copy)); // second time: nothing to do

            // Exactly one byte differs, by exactly VER_FLG_WEAK (0x2).
            var before = File.ReadAllBytes(original);
            var after = File.ReadAllBytes(copy);
            Assert.Equal(before.Length, after.Length);
            var diffs = Enumerable.Range(0, before.Length).Where(i => before[i] != after[i]).ToList();
            Assert.Single(diffs);
            Assert.Equal(0x2, after[diffs[0]] ^ before[diffs[0]]);
        }
        finally { File.Delete(copy); }
    }

    [Fact]
    public void HostCheckAgreesWithLibStdCxx()
    {
        if (!OperatingSystem.IsLinux()) return;
        var lib = GlibcxxCompat.HostLibraryPath;
        Assert.NotNull(lib);
        // Independent oracle: the version string appears in the library's string table iff it is defined there
        // (libstdc++ only names versions it defines).
        var text = System.Text.Encoding.ASCII.GetString(File.ReadAllBytes(lib!));
        Assert.Equal(text.Contains(GlibcxxCompat.RequiredVersion + "\0"), GlibcxxCompat.HostHasRequiredVersion);
    }

    [Fact]
    public void NonElfFileGivesClearError()
    {
        var path = Path.Combine(Path.GetTempPath(), $"seg-not-elf-{Guid.NewGuid():N}.so");
        File.WriteAllText(path, "not a library");
        try
        {
            var e = Assert.Throws<InvalidDataException>(() => GlibcxxCompat.PatchFile(path));
            Assert.Contains(path, e.Message);
        }
        finally { File.Delete(path); }
    }

    /// <summary>
    /// A library user's project outside this repository (so the repo's build step does not apply) that references
    /// Seg.Core builds and runs: SegRuntime.Initialize patches its output at start-up where the host needs it.
    /// </summary>
    [Fact]
    public void ConsumerProjectOutsideTheRepoRuns()
    {
        var repo = RepoRoot();
        var dir = Directory.CreateTempSubdirectory("seg-consumer-").FullName;
        try
        {
            foreach (var f in new[] { "Consumer.csproj", "Program.cs" })
                File.Copy(Path.Combine(repo, "samples", "Consumer", f), Path.Combine(dir, f));
            var csproj = Path.Combine(dir, "Consumer.csproj");
            File.WriteAllText(csproj, File.ReadAllText(csproj).Replace("../../Seg.Core/Seg.Core.csproj",
                Path.Combine(repo, "Seg.Core", "Seg.Core.csproj")));
            var output = Path.Combine(dir, "out");
            var (built, log, _) = Run("dotnet", $"build \"{csproj}\" -c Release -o \"{output}\" -p:UseSharedCompilation=false -nodeReuse:false", dir);
            Assert.True(built == 0, log);
            var shim = Directory.EnumerateFiles(output, GlibcxxCompat.ShimFileName, SearchOption.AllDirectories).Single();
            if (!GlibcxxCompat.HostHasRequiredVersion)
                Assert.True(GlibcxxCompat.HasStrongNeed(shim), "the consumer's build should not have been patched by the repo's build step");
            var consumer = $"\"{Path.Combine(output, "Consumer.dll")}\"";
            if (!GlibcxxCompat.HostHasRequiredVersion)
            {
                // With start-up patching forbidden, loading fails with a message that names the cause and the fix.
                var (code, _, err) = Run("dotnet", consumer, dir, ("SEG_NATIVE_PATCH", "0"));
                Assert.NotEqual(0, code);
                var message = err.Split('\n')[0]; // the exception's own message; inner exceptions follow
                Assert.Contains(nameof(NativeLoadException), message);
                Assert.Contains(GlibcxxCompat.ShimFileName, message);
                Assert.Contains(GlibcxxCompat.RequiredVersion, message);
                Assert.Contains("Fix:", message);
                Assert.DoesNotContain("reference to", message); // not TorchSharp's misleading text
            }
            var (exit, stdout, stderr) = Run("dotnet", consumer, dir);
            Assert.True(exit == 0, stderr);
            Assert.Contains("consumer ok 2.50", stdout);
            Assert.False(GlibcxxCompat.HasStrongNeed(shim) && !GlibcxxCompat.HostHasRequiredVersion);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    internal static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "seg.sln"))) return d.FullName;
        throw new InvalidOperationException("seg.sln not found above " + AppContext.BaseDirectory);
    }

    internal static (int ExitCode, string Stdout, string Stderr) Run(string file, string args, string workDir, params (string Key, string Value)[] env)
    {
        var psi = new ProcessStartInfo(file, args)
        {
            WorkingDirectory = workDir, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        // Keep the test host's MSBuild/vstest settings out of the child build.
        foreach (var key in new[] { "MSBUILD_EXE_PATH", "MSBuildExtensionsPath", "MSBuildSDKsPath", "VSTEST_HOST_DEBUG" })
            psi.Environment.Remove(key);
        foreach (var (key, value) in env) psi.Environment[key] = value;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr.Result);
    }
}
