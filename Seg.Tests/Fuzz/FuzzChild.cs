using System.Diagnostics;
using System.Globalization;

namespace Seg.Tests.Fuzz;

/// <summary>
/// The child process's side (<c>dotnet Seg.Tests.dll fuzz-child</c>): reads one case per line from stdin
/// (<c>format TAB id TAB path</c>), runs the format's reader on it, and answers with one line
/// (<c>RESULT TAB id TAB outcome TAB exception TAB ms TAB peakMB TAB digest TAB message</c>). Before each case it
/// prints <c>BEGIN TAB id</c>, so that the parent knows which case killed it. It runs under the parent's memory
/// limit (prlimit) and the parent's watchdog.
/// </summary>
public static class FuzzChild
{
    /// <summary>The first argument that makes Seg.Tests.dll a fuzz child instead of a test assembly.</summary>
    public const string Verb = "fuzz-child";

    /// <summary>Environment variable: the decompression cap (bytes) the child's readers run with.</summary>
    public const string CapVariable = "SEG_FUZZ_DECOMPRESS_CAP";

    public static int Run(TextReader input, TextWriter output)
    {
        Seg.Core.SegRuntime.Initialize();
        ConfigureReaders();
        output.WriteLine("READY");
        output.Flush();
        int done = 0;
        while (input.ReadLine() is { } line)
        {
            var parts = line.Split('\t');
            if (parts.Length != 3) { output.WriteLine($"ERROR\tbad request line: {line}"); output.Flush(); continue; }
            var (formatName, id, path) = (parts[0], parts[1], parts[2]);
            output.WriteLine($"BEGIN\t{id}");
            output.Flush();
            var result = RunOne(FuzzFormats.Find(formatName), id, path);
            output.WriteLine(string.Join('\t', "RESULT", id, result.Outcome, result.Exception,
                result.Milliseconds.ToString("F1", CultureInfo.InvariantCulture),
                result.PeakMegabytes.ToString("F1", CultureInfo.InvariantCulture), result.Digest, result.Message));
            output.Flush();
            if (++done % 200 == 0) { GC.Collect(); GC.WaitForPendingFinalizers(); }
        }
        return 0;
    }

    /// <summary>Reads one case in this process (also what the in-process tests use) and classifies the outcome.</summary>
    public static FuzzResult RunOne(IFuzzFormat format, string id, string path)
    {
        long before = ResetPeakMemory();
        var watch = Stopwatch.StartNew();
        Exception? error = null;
        string digest = "";
        try { digest = format.Read(path); }
        catch (Exception e) { error = e; }
        watch.Stop();
        double peak = before < 0 ? 0 : Math.Max(0, PeakResidentKb() - before) / 1024.0;
        var outcome = FuzzResult.Classify(error, path, format.RefusalTypes);
        return new FuzzResult(id, outcome, error?.GetType().Name ?? "", OneLine(error?.Message ?? ""),
            watch.Elapsed.TotalMilliseconds, peak, digest);
    }

    static void ConfigureReaders()
    {
        // Hook for reader-wide limits (the decompression cap); set here so that every case runs with the same ones.
        FuzzLimits.ApplyInChild(Environment.GetEnvironmentVariable(CapVariable));
    }

    /// <summary>Resets the kernel's peak-RSS mark (writing 5 to /proc/self/clear_refs) and returns the current
    /// RSS in KB, or −1 where that is not available.</summary>
    static long ResetPeakMemory()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return StatusKb("VmRSS:");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return -1; }
    }

    static long PeakResidentKb() => StatusKb("VmHWM:");

    static long StatusKb(string field)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith(field, StringComparison.Ordinal))
                return long.Parse(line[field.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
        return -1;
    }

    /// <summary>The message on one line, tabs removed, at most 400 characters.</summary>
    public static string OneLine(string message)
    {
        var s = message.Replace('\t', ' ').Replace('\r', ' ').Replace('\n', ' ');
        return s.Length > 400 ? s[..400] + "…" : s;
    }
}
