using System.Globalization;
using TorchSharp;

namespace Seg.Core.Native;

/// <summary>How many threads libtorch's CPU kernels use, and why that many.</summary>
/// <param name="Threads">The thread count given to <c>torch.set_num_threads</c>.</param>
/// <param name="Reason">Why, in a few words, for the first line of a run's output.</param>
public sealed record ThreadChoice(int Threads, string Reason)
{
    /// <summary>"2 threads (reason)".</summary>
    public override string ToString() => $"{Threads} thread{(Threads == 1 ? "" : "s")} ({Reason})";
}

/// <summary>
/// Chooses libtorch's CPU thread count for a training or evaluation process. Left to itself libtorch starts one
/// OpenMP thread per host core: in a container with a CPU quota that is more threads than the quota runs at once,
/// and on a machine whose cores other processes keep busy each parallel op waits for the thread that lost its core.
/// <see cref="Choose"/> therefore takes the cores this process may use (<see cref="Environment.ProcessorCount"/>,
/// which honours the affinity mask and the cgroup quota) less the cores other processes kept busy during a short
/// sample of <c>/proc/stat</c>, and at least one. That is a starting point: a training loop then times one thread
/// against all with <see cref="ThreadTuner"/>, because the load does not tell which is faster. A thread count the
/// user gave (the config, or <c>OMP_NUM_THREADS</c>) is used as given.
/// </summary>
public static class TorchThreads
{
    /// <summary>The reason of a choice that <c>OMP_NUM_THREADS</c> made.</summary>
    public const string FromEnvironment = "OMP_NUM_THREADS";

    /// <summary>How long <see cref="Choose"/> watches the host's load.</summary>
    public static readonly TimeSpan SampleWindow = TimeSpan.FromMilliseconds(150);

    /// <summary>The thread count for <paramref name="requested"/> threads (0: the environment's
    /// <c>OMP_NUM_THREADS</c> when set, else chosen from cores, quota and load).</summary>
    public static ThreadChoice Choose(int requested = 0)
    {
        if (requested > 0) return new ThreadChoice(requested, "as configured");
        if (int.TryParse(Environment.GetEnvironmentVariable("OMP_NUM_THREADS"), NumberStyles.None, CultureInfo.InvariantCulture, out var omp) && omp > 0)
            return new ThreadChoice(omp, FromEnvironment);
        var hostCpus = CpuLoad.HostCpus();
        return Decide(Environment.ProcessorCount, hostCpus, CpuLoad.SampleOthersBusyCores(SampleWindow, hostCpus));
    }

    /// <summary>Chooses as <see cref="Choose"/> and sets libtorch's thread count to the choice.</summary>
    public static ThreadChoice Apply(int requested = 0)
    {
        var choice = Choose(requested);
        torch.set_num_threads(choice.Threads);
        return choice;
    }

    /// <summary>
    /// The rule: one thread per usable core that other processes left free, rounded to the nearest whole core, at
    /// least one. A core counts as usable when this process may run on it (<paramref name="usableCores"/>: affinity
    /// and quota); other work (<paramref name="othersBusyCores"/>, null when unknown) is spread over all
    /// <paramref name="hostCpus"/>.
    /// </summary>
    internal static ThreadChoice Decide(int usableCores, int hostCpus, double? othersBusyCores)
    {
        usableCores = Math.Max(1, usableCores);
        var limit = usableCores < hostCpus ? $"{usableCores} of the host's {hostCpus} cores usable (CPU quota or affinity)" : $"{usableCores} cores";
        if (othersBusyCores is not { } busy)
            return new ThreadChoice(usableCores, $"{limit}; load unknown");
        var free = Math.Min(usableCores, hostCpus - busy);
        var threads = Math.Clamp((int)Math.Floor(free + 0.5), 1, usableCores);
        var load = busy < 0.25 ? "idle" : $"{busy.ToString("F1", CultureInfo.InvariantCulture)} busy with other work";
        return new ThreadChoice(threads, $"{limit}, {load}; set train.threads to override");
    }
}
