using System.Diagnostics;
using System.Globalization;
using TorchSharp;

namespace Seg.Core.Native;

/// <summary>
/// Settles libtorch's CPU thread count for a training loop by timing its steps: one thread against every usable
/// core, <see cref="ProbeSteps"/> steps each, one block after the other; the lower median wins, and the probe
/// repeats every <see cref="ReprobeInterval"/>, so that a run follows a machine whose load changes. Which wins depends on the
/// machine in ways a load sample does not tell: on a 2-core VM whose cores others kept busy, 1 thread beat 2 by
/// 20 % at a load of about 4, while at a load of about 60 two (sleeping, not spinning) threads were 2–5× faster than
/// one, since each thread gets its own share of the cores.
/// </summary>
/// <remarks>Use: <see cref="BeforeStep"/> before each step, <see cref="AfterStep"/> after it with the step's wall
/// time (without data loading). A step timed right after a switch is dropped (OpenMP starts or wakes its threads
/// then). Results differ in the last bits between thread counts, as they do between machines.</remarks>
public sealed class ThreadTuner
{
    /// <summary>Timed steps per candidate and probe.</summary>
    public const int ProbeSteps = 3;

    /// <summary>Wall time between probes.</summary>
    public static readonly TimeSpan ReprobeInterval = TimeSpan.FromSeconds(120);

    readonly int[] candidates;
    readonly List<double>[] times = [[], []];
    readonly Action<int> setThreads;
    readonly Func<TimeSpan> clock;
    int current, announced, phase = -1;   // phase: -1 between probes, else the candidate being timed
    bool dropNext;
    TimeSpan nextProbe = TimeSpan.Zero;   // probe at once: the first steps decide

    /// <summary>A tuner choosing between 1 and <paramref name="usableCores"/> threads; libtorch runs on
    /// <paramref name="initial"/> (already set, and already announced). <paramref name="setThreads"/> and
    /// <paramref name="clock"/> default to libtorch's <c>set_num_threads</c> and the time since construction.</summary>
    public ThreadTuner(int usableCores, int initial, Action<int>? setThreads = null, Func<TimeSpan>? clock = null)
    {
        candidates = [1, Math.Max(1, usableCores)];
        this.setThreads = setThreads ?? torch.set_num_threads;
        var watch = Stopwatch.StartNew();
        this.clock = clock ?? (() => watch.Elapsed);
        current = announced = initial;
    }

    /// <summary>The tuner for <paramref name="choice"/> made by <see cref="TorchThreads.Choose"/>, or null when there
    /// is nothing to tune: the user fixed the count (config or <c>OMP_NUM_THREADS</c>) or one core is usable.</summary>
    public static ThreadTuner? For(ThreadChoice choice, int requested)
    {
        if (requested > 0 || choice.Reason == TorchThreads.FromEnvironment || Environment.ProcessorCount < 2) return null;
        return new ThreadTuner(Environment.ProcessorCount, choice.Threads);
    }

    /// <summary>The thread count in use.</summary>
    public int Threads => current;

    /// <summary>Whether the tuner is timing candidates now.</summary>
    public bool Probing => phase >= 0;

    /// <summary>Call before a step: starts a probe when one is due and sets the count this step runs with.</summary>
    public void BeforeStep()
    {
        if (phase < 0 && clock() >= nextProbe)
        {
            phase = 0;
            foreach (var t in times) t.Clear();
        }
        if (phase >= 0) Use(candidates[phase]);
    }

    /// <summary>Call after a step with its wall time; returns the choice when a probe ended on another count than
    /// the one last announced (null otherwise).</summary>
    public ThreadChoice? AfterStep(TimeSpan stepTime)
    {
        if (phase < 0) return null;
        if (dropNext)
        {
            dropNext = false;
            return null;
        }
        times[phase].Add(stepTime.TotalMilliseconds);
        if (times[phase].Count < ProbeSteps) return null;
        if (++phase < candidates.Length) return null;

        phase = -1;
        nextProbe = clock() + ReprobeInterval;
        double one = Median(times[0]), all = Median(times[1]);
        Use(one <= all ? candidates[0] : candidates[1]);
        dropNext = false;
        if (current == announced) return null;
        announced = current;
        return new ThreadChoice(current, string.Create(CultureInfo.InvariantCulture,
            $"timed: {one:F0} ms a step on 1 thread, {all:F0} ms on {candidates[1]}"));
    }

    void Use(int threads)
    {
        if (threads == current) return;
        setThreads(threads);
        current = threads;
        dropNext = true;
    }

    static double Median(List<double> values)
    {
        var s = values.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }
}
