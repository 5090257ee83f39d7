using System.Diagnostics;
using System.Globalization;
using Seg.Platform.Native;

namespace Seg.Tests;

/// <summary>
/// OpenCV's native library loads on a host without GTK and X11: the ELF patch itself (checked with binutils'
/// readelf and nm as the oracle), and the first command of a new user, <c>train</c> on the embedded default config,
/// then <c>predict</c> on PNG files, then the deploy sample (Seg.Onnx alone) on the exported model, in a child
/// process that cannot load the GUI libraries.
/// </summary>
public class HeadlessOpenCvTests
{
    // What a server or the .NET SDK container lacks: the GUI stack OpenCvSharp's runtime links.
    static readonly string[] GuiLibraries =
    [
        "libgtk-3.so.0", "libgdk-3.so.0", "libpangocairo-1.0.so.0", "libpango-1.0.so.0", "libatk-1.0.so.0",
        "libcairo-gobject.so.2", "libcairo.so.2", "libgdk_pixbuf-2.0.so.0", "libgio-2.0.so.0", "libgobject-2.0.so.0",
        "libglib-2.0.so.0", "libdrm.so.2", "libX11.so.6", "libfreetype.so.6", "libharfbuzz.so.0",
    ];

    static string PristineLibrary()
    {
        var root = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
                   ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var dir = Path.Combine(root, "opencvsharp4.official.runtime.linux-x64");
        var file = Directory.Exists(dir)
            ? Directory.EnumerateFiles(dir, HeadlessOpenCv.LibraryFileName, SearchOption.AllDirectories).FirstOrDefault()
            : null;
        Assert.True(file is not null, $"expected OpenCvSharp's runtime in the NuGet cache under {dir}");
        return file;
    }

    static (int Code, string Output) Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in 5 minutes");
        }
        return (p.ExitCode, stdout + stderr.Result);
    }

    static bool HasBinutils() => File.Exists("/usr/bin/readelf") && File.Exists("/usr/bin/nm");

    [Fact]
    public void PatchDropsOnlyTheUnloadableUnversionedDependenciesAndWeakensTheirSymbols()
    {
        if (!OperatingSystem.IsLinux()) return;
        var copy = Path.Combine(Path.GetTempPath(), $"seg-opencv-{Guid.NewGuid():N}.so");
        File.Copy(PristineLibrary(), copy);
        try
        {
            var stamp = File.GetLastWriteTimeUtc(copy);
            // Pretend every GUI library is missing, and libc too: libc is versioned, so it must stay.
            bool CanLoad(string soname) => !GuiLibraries.Contains(soname) && soname != "libc.so.6";

            var dropped = HeadlessOpenCv.PatchFile(copy, CanLoad);

            Assert.Contains("libgtk-3.so.0", dropped);
            Assert.Contains("libX11.so.6", dropped);
            Assert.DoesNotContain("libc.so.6", dropped);
            Assert.Equal(stamp, File.GetLastWriteTimeUtc(copy));        // incremental builds do not copy over it
            Assert.Empty(HeadlessOpenCv.PatchFile(copy, CanLoad));       // second time: nothing left to do
            if (!HasBinutils()) return;

            var needed = Run("/usr/bin/readelf", "-d", copy).Output.Split('\n')
                .Where(l => l.Contains("(NEEDED)")).Select(l => l[(l.IndexOf('[') + 1)..l.IndexOf(']')]).ToList();
            Assert.Empty(needed.Intersect(GuiLibraries));
            Assert.Contains("libc.so.6", needed);
            Assert.Contains("libstdc++.so.6", needed);
            // nm: 'U' is a strong undefined symbol, 'w' a weak one; versioned ones (name@VERSION) stay strong.
            List<string[]> Undefined(string file) => Run("/usr/bin/nm", "-D", "--undefined-only", file).Output
                .Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Select(l => l.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries)).Where(p => p.Length == 2).ToList();
            var before = Undefined(PristineLibrary());
            var after = Undefined(copy);
            Assert.Equal(before.Select(p => p[1]), after.Select(p => p[1]));
            Assert.Contains(before, p => p[1] == "gtk_init_check" && p[0] == "U");
            Assert.Contains(after, p => p[1] == "gtk_init_check" && p[0] == "w");
            Assert.Contains(after, p => p[1] == "g_free" && p[0] == "w");
            Assert.All(after.Where(p => !p[1].Contains('@')), p => Assert.Equal("w", p[0]));
            // Versioned symbols (the C and C++ runtimes) keep their binding.
            Assert.Equal(before.Where(p => p[1].Contains('@')).Select(p => p[0] + p[1]), after.Where(p => p[1].Contains('@')).Select(p => p[0] + p[1]));
        }
        finally { File.Delete(copy); }
    }

    [Fact]
    public void NothingChangesWhereEveryDependencyLoads()
    {
        if (!OperatingSystem.IsLinux()) return;
        var copy = Path.Combine(Path.GetTempPath(), $"seg-opencv-{Guid.NewGuid():N}.so");
        File.Copy(PristineLibrary(), copy);
        try
        {
            var before = File.GetLastWriteTimeUtc(copy);
            Assert.Empty(HeadlessOpenCv.PatchFile(copy, _ => true));
            Assert.Equal(before, File.GetLastWriteTimeUtc(copy));
        }
        finally { File.Delete(copy); }
    }

    [Fact]
    public void ANonElfFileIsRefusedNamingIt()
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, "not a library");
            var e = Assert.Throws<InvalidDataException>(() => HeadlessOpenCv.PatchFile(file, _ => false));
            Assert.Contains(file, e.Message);
        }
        finally { File.Delete(file); }
    }

    /// <summary>A [Fact] that needs a private mount namespace; skipped with the reason elsewhere.</summary>
    sealed class HeadlessFactAttribute : FactAttribute
    {
        public HeadlessFactAttribute()
        {
            if (CannotHide() is { } reason) Skip = reason;
        }
    }

    /// <summary>Why the child processes below cannot hide the GUI libraries here, or null.</summary>
    static string? CannotHide()
    {
        if (!OperatingSystem.IsLinux()) return "needs Linux";
        if (!File.Exists("/usr/bin/unshare")) return "needs unshare (util-linux)";
        string? uid = null, caps = null;
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("Uid:", StringComparison.Ordinal)) uid = line.Split('\t', StringSplitOptions.RemoveEmptyEntries)[2];
            if (line.StartsWith("CapEff:", StringComparison.Ordinal)) caps = line.Split('\t', StringSplitOptions.RemoveEmptyEntries)[1];
        }
        const int capSysAdmin = 21;
        return uid == "0" && caps is not null && ((ulong.Parse(caps, NumberStyles.HexNumber, CultureInfo.InvariantCulture) >> capSysAdmin) & 1) == 1
            ? null : "needs root with CAP_SYS_ADMIN for a private mount namespace (CI runs as root)";
    }

    /// <summary>
    /// Runs Seg.Train in a private mount namespace in which each GUI library of this host is /dev/null (so it
    /// cannot be loaded), from a hard-linked copy of the application folder, so that a start-up patch replaces
    /// only the copy's directory entry and the build output stays as it is.
    /// </summary>
    sealed class HeadlessApp : IDisposable
    {
        readonly string folder;

        public HeadlessApp()
        {
            folder = Path.Combine(Path.GetDirectoryName(AppContext.BaseDirectory.TrimEnd('/'))!, $"headless-{Guid.NewGuid():N}");
            var (code, output) = Run("/bin/cp", "-al", AppContext.BaseDirectory, folder);
            Assert.True(code == 0, $"cp -al failed: {output}");
            Work = Directory.CreateTempSubdirectory("seg-headless-").FullName;
        }

        public string Work { get; }

        public (int Code, string Output) Seg(IEnumerable<(string Name, string Value)> environment, params string[] args) =>
            Dotnet("Seg.Train.dll", environment, args);

        /// <summary>Runs <paramref name="app"/> of the copied folder, as <see cref="Seg"/> runs Seg.Train.</summary>
        public (int Code, string Output) Dotnet(string app, IEnumerable<(string Name, string Value)> environment, params string[] args)
        {
            var hide = GuiLibraries.Select(l => Path.Combine("/usr/lib/x86_64-linux-gnu", l)).Where(File.Exists)
                .Select(p => $"mount --bind /dev/null {p} && ");
            var env = string.Concat(environment.Select(e => $"{e.Name}={e.Value} "));
            var command = $"{string.Concat(hide)}cd {Work} && {env}OMP_NUM_THREADS=1 exec dotnet {Path.Combine(folder, app)} " +
                          string.Join(' ', args.Select(a => $"'{a}'"));
            return Run("/usr/bin/unshare", "-m", "/bin/bash", "-c", command);
        }

        public void Dispose()
        {
            Directory.Delete(folder, recursive: true);
            Directory.Delete(Work, recursive: true);
        }
    }

    [HeadlessFact]
    public void TheDefaultTrainingAndPredictOnPngFilesWorkWithoutTheGuiLibraries()
    {
        using var app = new HeadlessApp();

        // The README's first command, on the embedded default config, shortened.
        var (code, output) = app.Seg([], "train", "--set", "train.iterations=12", "--set", "train.eval_every=12",
            "--set", "train.checkpoint_every=12", "--set", "schedule.warmup_iters=0", "--set", "data.train_count=96",
            "--set", "data.val_count=16", "--set", "train.threads=1", "--output", "run");
        Assert.True(code == 0, $"train exited {code}: {output}");
        Assert.Contains("done: val mIoU", output);
        Assert.DoesNotContain("TypeInitializationException", output);
        var checkpoint = Path.Combine(app.Work, "run", "checkpoints", "best.ckpt");
        Assert.True(File.Exists(checkpoint));

        // predict decodes PNG files with OpenCV: the report's plots serve as input images.
        var input = Directory.CreateDirectory(Path.Combine(app.Work, "images")).FullName;
        var pngs = Directory.GetFiles(Path.Combine(app.Work, "run", "plots"), "*.png").Take(3).ToList();
        Assert.NotEmpty(pngs);
        foreach (var png in pngs) File.Copy(png, Path.Combine(input, Path.GetFileName(png)));
        (code, output) = app.Seg([], "predict", "--checkpoint", checkpoint, "--input", input, "--output", "predicted");
        Assert.True(code == 0, $"predict exited {code}: {output}");
        Assert.Contains($"predicted {pngs.Count} image(s)", output);
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(app.Work, "predicted"), "*.png"));

        // A deploy application references Seg.Onnx only (no Seg.Core, no TorchSharp): the exported model and OpenCV
        // load there too, through Seg.Onnx's own start-up check, in a fresh copy that Seg.Train has not patched.
        (code, output) = app.Seg([], "export", "--checkpoint", checkpoint, "--output", "model.onnx");
        Assert.True(code == 0, $"export exited {code}: {output}");
        using var deploy = new HeadlessApp();
        var (model, image) = (Path.Combine(deploy.Work, "model.onnx"), Path.Combine(deploy.Work, "image.png"));
        File.Copy(Path.Combine(app.Work, "model.onnx"), model);
        File.Copy(pngs[0], image);
        (code, output) = deploy.Dotnet("OnnxDeploy.dll", [], model, image);
        Assert.True(code == 0, $"OnnxDeploy exited {code}: {output}");
        Assert.Contains("_mask.png", output);
        Assert.True(File.Exists(Path.ChangeExtension(image, null) + "_mask.png"));
        Assert.DoesNotContain("TypeInitializationException", output);
    }

    [HeadlessFact]
    public void WhereOpenCvCannotBeMadeToLoadOneLineNamesTheMissingLibrariesAndThePackages()
    {
        using var app = new HeadlessApp();
        var input = Directory.CreateDirectory(Path.Combine(app.Work, "images")).FullName;
        File.WriteAllBytes(Path.Combine(input, "x.png"), [0x89, 0x50, 0x4E, 0x47]);

        var (code, output) = app.Seg([("SEG_NATIVE_PATCH", "0")], "predict", "--model", "none.onnx", "--input", input, "--output", "out");

        Assert.Equal(1, code);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("error: OpenCV's native library", lines[0]);
        Assert.Contains("libgtk-3.so.0", lines[0]);
        Assert.Contains("apt-get install -y", lines[0]);
        Assert.Contains("libgtk-3-0", lines[0]);
        Assert.DoesNotContain("TypeInitializationException", output);
    }
}
