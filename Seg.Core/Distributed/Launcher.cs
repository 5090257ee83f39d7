using System.Collections;
using System.Globalization;

namespace Seg.Core.Distributed;

/// <summary>Where this process sits in a job started by an MPI launcher (<c>mpirun</c>, <c>srun</c>).</summary>
/// <param name="Rank">This process's rank, 0 ≤ Rank &lt; Size.</param>
/// <param name="Size">Number of processes in the job.</param>
/// <param name="LocalRank">Rank among the processes on this machine (picks the GPU).</param>
/// <param name="Variable">The environment variable that gave the launcher away, for messages.</param>
public sealed record LaunchInfo(int Rank, int Size, int LocalRank, string Variable);

/// <summary>
/// Detects an MPI launcher from the environment it sets for its children, without loading any MPI library:
/// Open MPI's <c>mpirun</c> sets <c>OMPI_COMM_WORLD_SIZE</c>/<c>_RANK</c>/<c>_LOCAL_RANK</c>, PMIx-based launchers
/// (Open MPI 5, Slurm's <c>srun --mpi=pmix</c>) <c>PMIX_RANK</c>, and PMI-1/2 launchers (Hydra, <c>srun --mpi=pmi2</c>)
/// <c>PMI_SIZE</c>/<c>PMI_RANK</c>. A process started without one sees none of them and trains alone.
/// </summary>
public static class Launcher
{
    /// <summary>The variables whose presence means a launcher started this process.</summary>
    public static readonly IReadOnlyList<string> Variables = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"];

    /// <summary>The launch of this process (read from <see cref="Environment"/>), or null when no launcher started it.</summary>
    /// <exception cref="DistributedException">A launcher variable is there but its value is not a valid rank or size.</exception>
    public static LaunchInfo? Detect() => Detect(CurrentEnvironment());

    /// <summary>The launch described by <paramref name="environment"/>, or null when it names no launcher.</summary>
    /// <exception cref="DistributedException">A launcher variable is there but its value is not a valid rank or size.</exception>
    public static LaunchInfo? Detect(IReadOnlyDictionary<string, string> environment)
    {
        ArgumentNullException.ThrowIfNull(environment);
        string? Get(string name) => environment.TryGetValue(name, out var v) && !string.IsNullOrWhiteSpace(v) ? v : null;
        var variable = Variables.FirstOrDefault(v => Get(v) is not null);
        if (variable is null) return null;

        // The rank and size as each launcher family spells them; the first one present wins.
        var size = Number(environment, "size", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS");
        var rank = Number(environment, "rank", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID");
        var local = Number(environment, "local rank", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID", "PMI_LOCAL_RANK");
        // PMIx does not put the size in the environment: MPI_Comm_size gives it once the library is up (0 = not known yet).
        if (size is <= 0 && variable != "PMIX_RANK")
            throw new DistributedException($"{variable} is set, so an MPI launcher started this process, but the job size is missing or not positive");
        if (rank is null || rank < 0 || (size > 0 && rank >= size))
            throw new DistributedException($"{variable} is set, so an MPI launcher started this process, but its rank ({rank?.ToString(CultureInfo.InvariantCulture) ?? "missing"}) is not in [0, {size})");
        return new LaunchInfo(rank.Value, size ?? 0, local ?? 0, variable);
    }

    static int? Number(IReadOnlyDictionary<string, string> environment, string what, params string[] names)
    {
        foreach (var name in names)
        {
            if (!environment.TryGetValue(name, out var text) || string.IsNullOrWhiteSpace(text)) continue;
            if (!int.TryParse(text.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var value))
                throw new DistributedException($"{name}={text}: the launcher's {what} is not an integer");
            return value;
        }
        return null;
    }

    internal static Dictionary<string, string> CurrentEnvironment()
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (DictionaryEntry e in Environment.GetEnvironmentVariables())
            if (e.Key is string k && e.Value is string v) result[k] = v;
        return result;
    }
}
