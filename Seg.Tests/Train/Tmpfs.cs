using System.Diagnostics;
using System.Globalization;

namespace Seg.Tests.Train;

/// <summary>
/// A [Fact] that mounts a small tmpfs to fill a disk for real: it needs Linux, root and CAP_SYS_ADMIN (CI runs as
/// root); elsewhere it is skipped with the reason.
/// </summary>
public sealed class TmpfsFactAttribute : FactAttribute
{
    public TmpfsFactAttribute()
    {
        if (Tmpfs.Unavailable() is { } reason) Skip = reason;
    }
}

/// <summary>A tmpfs of a given size mounted on a fresh directory; unmounted and removed on dispose.</summary>
public sealed class Tmpfs : IDisposable
{
    public Tmpfs(long bytes)
    {
        Path = Directory.CreateTempSubdirectory("seg-tmpfs-").FullName;
        var (code, output) = Run("mount", "-t", "tmpfs", "-o", $"size={bytes},mode=0700", "tmpfs", Path);
        if (code != 0)
        {
            Directory.Delete(Path);
            throw new InvalidOperationException($"mount -t tmpfs failed ({code}): {output}");
        }
    }

    /// <summary>The mount point.</summary>
    public string Path { get; }

    /// <summary>Why no tmpfs can be mounted here, or null.</summary>
    public static string? Unavailable()
    {
        if (!OperatingSystem.IsLinux()) return "needs Linux to mount a tmpfs";
        string? uid = null, caps = null;
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("Uid:", StringComparison.Ordinal)) uid = line.Split('\t', StringSplitOptions.RemoveEmptyEntries)[2];
            if (line.StartsWith("CapEff:", StringComparison.Ordinal)) caps = line.Split('\t', StringSplitOptions.RemoveEmptyEntries)[1];
        }
        if (uid != "0") return "needs root to mount a tmpfs (CI runs as root)";
        const int capSysAdmin = 21;
        return caps is not null && ((ulong.Parse(caps, NumberStyles.HexNumber, CultureInfo.InvariantCulture) >> capSysAdmin) & 1) == 1
            ? null : "needs CAP_SYS_ADMIN to mount a tmpfs";
    }

    /// <summary>Fills the file system with <paramref name="file"/> until a write fails, then gives back
    /// <paramref name="leave"/> bytes; returns the file's final size.</summary>
    public static long Fill(string file, long leave)
    {
        var chunk = new byte[64 << 10];
        using var stream = new FileStream(file, FileMode.Create, FileAccess.Write, FileShare.None, 1);
        try
        {
            while (true) stream.Write(chunk);
        }
        catch (IOException)
        {
            // Full. What did not fit of the last chunk is not in the file.
        }
        var size = Math.Max(0, new FileInfo(file).Length - leave);
        stream.SetLength(size);
        return size;
    }

    /// <summary>Remounts the file system read-only.</summary>
    public void RemountReadOnly()
    {
        var (code, output) = Run("mount", "-o", "remount,ro", Path);
        if (code != 0) throw new InvalidOperationException($"mount -o remount,ro failed ({code}): {output}");
    }

    public void Dispose()
    {
        var (code, _) = Run("umount", Path);
        if (code != 0) Run("umount", "-l", Path);
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }

    static (int Code, string Output) Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var output = p.StandardError.ReadToEnd() + p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output.Trim());
    }
}
