using System.Globalization;

namespace Seg.Core.Native;

/// <summary>
/// How busy the host's CPUs are with other processes' work, from <c>/proc/stat</c> (all CPUs' busy and idle time)
/// minus this process's own CPU time (<c>/proc/self/stat</c>), both in clock ticks. Linux only.
/// </summary>
internal sealed class CpuLoad
{
    readonly long total, idle, self;

    CpuLoad(long total, long idle, long self) => (this.total, this.idle, this.self) = (total, idle, self);

    /// <summary>Now's counters, or null where <c>/proc</c> cannot be read (not Linux, or a sandbox hides it).</summary>
    public static CpuLoad? Read()
    {
        if (!OperatingSystem.IsLinux()) return null;
        try
        {
            var stat = ParseStat(File.ReadLines("/proc/stat").First());
            var self = ParseSelf(File.ReadAllText("/proc/self/stat"));
            return stat is { } s && self is { } own ? new CpuLoad(s.Total, s.Idle, own) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>The host's CPUs (lines <c>cpuN</c> of <c>/proc/stat</c>): what the load is spread over, which a CPU
    /// quota does not change.</summary>
    public static int HostCpus()
    {
        try
        {
            var n = File.ReadLines("/proc/stat").Count(l => l.Length > 3 && l.StartsWith("cpu", StringComparison.Ordinal) && char.IsAsciiDigit(l[3]));
            return n > 0 ? n : Environment.ProcessorCount;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Environment.ProcessorCount;
        }
    }

    /// <summary>Cores' worth of CPU time that other processes used between <paramref name="earlier"/> and this
    /// sample (0 to <paramref name="hostCpus"/>).</summary>
    public double OthersBusyCoresSince(CpuLoad earlier, int hostCpus)
    {
        var elapsed = total - earlier.total;
        if (elapsed <= 0) return 0;
        var busy = elapsed - (idle - earlier.idle);
        var othersBusy = busy - (self - earlier.self);
        return Math.Clamp(hostCpus * (double)othersBusy / elapsed, 0, hostCpus);
    }

    /// <summary>Samples for <paramref name="window"/> (this thread sleeps meanwhile); null where <c>/proc</c> is unreadable.</summary>
    public static double? SampleOthersBusyCores(TimeSpan window, int hostCpus)
    {
        var first = Read();
        if (first is null) return null;
        Thread.Sleep(window);
        return Read()?.OthersBusyCoresSince(first, hostCpus);
    }

    // "cpu  user nice system idle iowait irq softirq steal guest guest_nice": guest time is already counted in user.
    internal static (long Total, long Idle)? ParseStat(string line)
    {
        var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (f.Length < 5 || f[0] != "cpu") return null;
        var v = f.Skip(1).Take(8).Select(s => long.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        return (v.Sum(), v[3] + (v.Length > 4 ? v[4] : 0));
    }

    // utime and stime are fields 14 and 15; the command name (field 2) is in parentheses and may hold spaces.
    internal static long? ParseSelf(string stat)
    {
        var close = stat.LastIndexOf(')');
        if (close < 0) return null;
        var f = stat[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return f.Length < 13 ? null : long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture);
    }
}
