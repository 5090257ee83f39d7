using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Seg.Tests.Fuzz;

/// <summary>Limits a fuzz child runs under.</summary>
/// <param name="CaseSeconds">Watchdog: a case still running after this is a <see cref="FuzzOutcome.Timeout"/> (a
/// hang detector, far above the few seconds any reader should need; not a speed test).</param>
/// <param name="AddressSpaceBytes">prlimit --as for the child: .NET, libtorch and OpenCV reserve about 3.5 GiB of
/// address space before reading anything, so this is that plus the memory a case may use.</param>
/// <param name="GcHeapBytes">DOTNET_GCHeapHardLimit: managed allocations past it throw OutOfMemoryException.</param>
/// <param name="DecompressCap">The readers' decompression cap in the child (bytes).</param>
public sealed record FuzzLimits(double CaseSeconds, long AddressSpaceBytes, long GcHeapBytes, long DecompressCap)
{
    /// <summary>20 s per case; 1 GiB of managed heap; 256 MiB of decompressed data.</summary>
    public static readonly FuzzLimits Default = new(CaseSeconds: 20, AddressSpaceBytes: 6L << 30, GcHeapBytes: 1L << 30, DecompressCap: 256L << 20);

    internal static void ApplyInChild(string? cap)
    {
        if (cap is null) return;
        long bytes = long.Parse(cap, CultureInfo.InvariantCulture);
        Seg.Core.Readers.ReaderLimits.MaxDecompressedBytes = bytes;
    }
}

/// <summary>
/// Runs cases through a child process (<see cref="FuzzChild"/>) under <see cref="FuzzLimits"/>: each case is
/// written to a fresh folder, sent to the child, and answered with a <see cref="FuzzResult"/>. A child that dies or
/// hangs is recorded against the case it was reading and replaced by a new one; the cases after it go on. One child
/// serves many cases (starting .NET and libtorch per case would make a long run take hours); a case that breaks the
/// process shows as a crash of that case, and one that only corrupts state would show in the cases after it, which
/// <see cref="Rerun"/> then checks alone.
/// </summary>
public sealed class FuzzRunner : IDisposable
{
    readonly FuzzLimits limits;
    readonly string workDir;
    Process? child;
    BlockingCollection<string?>? lines;
    readonly StringBuilder stderr = new();
    int caseNumber;

    public FuzzRunner(FuzzLimits limits)
    {
        this.limits = limits;
        workDir = Path.Combine(Path.GetTempPath(), "segfuzz-" + Environment.ProcessId + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(workDir);
    }

    /// <summary>How many child processes were started (1 + crashes + timeouts, normally).</summary>
    public int ChildrenStarted { get; private set; }

    /// <summary>Writes the case (through <see cref="IFuzzFormat.Encode"/>), has the child read it, returns the result.</summary>
    public FuzzResult Run(IFuzzFormat format, FuzzCase c)
    {
        var dir = Path.Combine(workDir, (caseNumber++).ToString(CultureInfo.InvariantCulture));
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, format.FileName);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, format.Encode(c.Bytes));
        try
        {
            return Send(format, c.Id, path);
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>Runs one case in a child of its own (to tell a crash it caused from one an earlier case set up).</summary>
    public static FuzzResult Rerun(IFuzzFormat format, FuzzCase c, FuzzLimits limits)
    {
        using var alone = new FuzzRunner(limits);
        return alone.Run(format, c);
    }

    FuzzResult Send(IFuzzFormat format, string id, string path)
    {
        if (child is null || child.HasExited) Start();
        child!.StandardInput.WriteLine($"{format.Name}\t{id}\t{path}");
        child.StandardInput.Flush();
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var left = TimeSpan.FromSeconds(limits.CaseSeconds) - deadline.Elapsed;
            if (left <= TimeSpan.Zero || !lines!.TryTake(out var line, left))
            {
                Kill();
                return new FuzzResult(id, FuzzOutcome.Timeout, "", $"still running after {limits.CaseSeconds} s; child killed",
                    limits.CaseSeconds * 1000, 0, "");
            }
            if (line is null)
            {
                child.WaitForExit();
                int code = child.ExitCode;
                string tail = StderrTail();
                child.Dispose();
                child = null;
                // 128+9 (SIGKILL) with an address-space limit is how the kernel or runtime ends a child out of memory.
                var outcome = tail.Contains("OutOfMemory", StringComparison.Ordinal) || tail.Contains("out of memory", StringComparison.OrdinalIgnoreCase)
                    ? FuzzOutcome.OutOfMemory : FuzzOutcome.Crash;
                return new FuzzResult(id, outcome, $"exit {code}", FuzzChild.OneLine(tail), deadline.Elapsed.TotalMilliseconds, 0, "");
            }
            if (!line.StartsWith("RESULT\t", StringComparison.Ordinal)) continue; // BEGIN, READY
            var f = line.Split('\t', 8);
            if (f[1] != id) continue;
            return new FuzzResult(id, Enum.Parse<FuzzOutcome>(f[2]), f[3], f[7],
                double.Parse(f[4], CultureInfo.InvariantCulture), double.Parse(f[5], CultureInfo.InvariantCulture), f[6]);
        }
    }

    void Start()
    {
        string host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } h && File.Exists(h) ? h : "dotnet";
        string dll = typeof(FuzzChild).Assembly.Location;
        var psi = new ProcessStartInfo("prlimit")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workDir,
        };
        foreach (var a in new[] { $"--as={limits.AddressSpaceBytes}", "--core=0", "--", host, dll, FuzzChild.Verb }) psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_GCHeapHardLimit"] = "0x" + limits.GcHeapBytes.ToString("X", CultureInfo.InvariantCulture);
        psi.Environment[FuzzChild.CapVariable] = limits.DecompressCap.ToString(CultureInfo.InvariantCulture);
        psi.Environment["DOTNET_DbgEnableMiniDump"] = "0";
        lock (stderr) stderr.Clear();
        var p = Process.Start(psi) ?? throw new InvalidOperationException("cannot start the fuzz child (prlimit)");
        ChildrenStarted++;
        var queue = new BlockingCollection<string?>();
        var reader = new Thread(() =>
        {
            try { while (p.StandardOutput.ReadLine() is { } l) queue.Add(l); }
            catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException) { }
            queue.Add(null);
        }) { IsBackground = true, Name = "fuzz-child-stdout" };
        reader.Start();
        p.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (stderr) { stderr.AppendLine(e.Data); if (stderr.Length > 8192) stderr.Remove(0, stderr.Length - 8192); }
        };
        p.BeginErrorReadLine();
        child = p;
        lines = queue;
        // Start-up (runtime, libtorch) is not a case: wait for READY without the per-case watchdog.
        if (!queue.TryTake(out var ready, TimeSpan.FromSeconds(120)) || ready != "READY")
            throw new InvalidOperationException($"fuzz child did not start: {ready ?? "(no output)"}; stderr: {StderrTail()}");
    }

    string StderrTail()
    {
        lock (stderr) return stderr.Length > 1500 ? stderr.ToString(stderr.Length - 1500, 1500) : stderr.ToString();
    }

    void Kill()
    {
        if (child is null) return;
        try { child.Kill(entireProcessTree: true); child.WaitForExit(5000); }
        catch (InvalidOperationException) { }
        child.Dispose();
        child = null;
    }

    public void Dispose()
    {
        if (child is not null)
        {
            try { child.StandardInput.Close(); if (!child.WaitForExit(5000)) Kill(); }
            catch (Exception e) when (e is IOException or InvalidOperationException) { Kill(); }
            child?.Dispose();
            child = null;
        }
        try { Directory.Delete(workDir, recursive: true); } catch (IOException) { }
    }
}
