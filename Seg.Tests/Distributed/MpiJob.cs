using System.Diagnostics;
using System.Text;

namespace Seg.Tests.Distributed;

/// <summary>A <c>[Fact]</c> that is skipped, with the reason, where Open MPI's <c>mpirun</c> is not installed.</summary>
public sealed class MpiFactAttribute : FactAttribute
{
    public MpiFactAttribute()
    {
        if (MpiJob.Mpirun is null) Skip = "mpirun not found on PATH: install openmpi-bin and libopenmpi-dev (.ci/run does)";
    }
}

/// <summary>Runs a command under <c>mpirun --allow-run-as-root --oversubscribe -np N</c> with one torch thread
/// per rank, and kills the whole job when it overruns its time limit (so a hang fails the test, not the run).</summary>
internal static class MpiJob
{
    public static readonly string? Mpirun = FindOnPath("mpirun");

    public sealed record Result(int ExitCode, string Stdout, string Stderr, TimeSpan Elapsed, bool TimedOut)
    {
        public override string ToString() => $"exit {ExitCode}{(TimedOut ? " (timed out)" : "")} after {Elapsed.TotalSeconds:F1} s\n--- stdout\n{Stdout}\n--- stderr\n{Stderr}";
    }

    // Every job: root allowed (containers), more ranks than cores (CI), one torch thread per rank that sleeps when idle.
    static readonly string[] LauncherOptions = ["--allow-run-as-root", "--oversubscribe", "-x", "OMP_NUM_THREADS=1", "-x", "OMP_WAIT_POLICY=PASSIVE"];

    static string DotnetHost => Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } h && File.Exists(h) ? h : "dotnet";

    /// <summary>The command that starts Seg.Train's entry point: <c>dotnet Seg.Train.dll</c>.</summary>
    public static string[] SegTrain => [DotnetHost, Path.Combine(AppContext.BaseDirectory, "Seg.Train.dll")];

    /// <summary>The command that starts this assembly as one rank of a test job (<see cref="MpiChild"/>).</summary>
    public static string[] Child => [DotnetHost, typeof(MpiChild).Assembly.Location, MpiChild.Verb];

    /// <summary>Runs <paramref name="command"/> on <paramref name="ranks"/> processes.</summary>
    public static Result Run(int ranks, IEnumerable<string> command, string workingDirectory, TimeSpan limit, IReadOnlyDictionary<string, string>? environment = null)
    {
        var args = new List<string>([.. LauncherOptions, "-np", ranks.ToString()]);
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) args.AddRange(["-x", $"{k}={v}"]);
        args.AddRange(command);
        return Start(Mpirun ?? throw new InvalidOperationException("mpirun not found"), args, workingDirectory, limit, environment);
    }

    /// <summary>Runs one process per command (MPMD: <c>mpirun -np 1 A : -np 1 B</c>), rank i running command i.</summary>
    public static Result RunEach(IReadOnlyList<IReadOnlyList<string>> commands, string workingDirectory, TimeSpan limit)
    {
        var args = new List<string>(LauncherOptions);
        for (var i = 0; i < commands.Count; i++)
        {
            if (i > 0) args.Add(":");
            args.AddRange(["-np", "1", .. commands[i]]);
        }
        return Start(Mpirun ?? throw new InvalidOperationException("mpirun not found"), args, workingDirectory, limit, null);
    }

    /// <summary>Starts <paramref name="command"/> on <paramref name="ranks"/> processes without waiting.</summary>
    public static Process Launch(int ranks, IEnumerable<string> command, string workingDirectory)
    {
        var psi = new ProcessStartInfo(Mpirun ?? throw new InvalidOperationException("mpirun not found"))
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = workingDirectory,
        };
        foreach (var a in LauncherOptions.Concat(["-np", ranks.ToString()]).Concat(command))
            psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    /// <summary>The process ids of the ranks of a job started by <paramref name="mpirun"/> whose
    /// OMPI_COMM_WORLD_RANK is <paramref name="rank"/> (read from /proc).</summary>
    public static IReadOnlyList<int> RankProcesses(int mpirun, int rank)
    {
        var result = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid) || pid == mpirun) continue;
            try
            {
                if (!DescendsFrom(pid, mpirun)) continue;
                var environ = File.ReadAllText(Path.Combine(dir, "environ")).Split('\0');
                if (environ.Contains($"OMPI_COMM_WORLD_RANK={rank}")) result.Add(pid);
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        return result;
    }

    static bool DescendsFrom(int pid, int ancestor)
    {
        for (var i = 0; i < 16 && pid > 1; i++)
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            pid = int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1]);
            if (pid == ancestor) return true;
        }
        return false;
    }

    /// <summary>Runs <paramref name="command"/> as a plain process (no launcher).</summary>
    public static Result RunAlone(IReadOnlyList<string> command, string workingDirectory, TimeSpan limit, IReadOnlyDictionary<string, string>? environment = null) =>
        Start(command[0], command.Skip(1), workingDirectory, limit, environment);

    static Result Start(string file, IEnumerable<string> args, string workingDirectory, TimeSpan limit, IReadOnlyDictionary<string, string>? environment)
    {
        var psi = new ProcessStartInfo(file)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = workingDirectory,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["OMP_NUM_THREADS"] = "1";
        psi.Environment["OMP_WAIT_POLICY"] = "PASSIVE";
        foreach (var name in new[] { "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_SIZE", "PMI_RANK" }) psi.Environment.Remove(name);
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        var watch = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (stdout) stdout.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.AppendLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        var timedOut = !p.WaitForExit(limit);
        if (timedOut)
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
        }
        p.WaitForExit();   // drains the output events
        return new Result(timedOut ? -1 : p.ExitCode, stdout.ToString(), stderr.ToString(), watch.Elapsed, timedOut);
    }

    static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);
}
