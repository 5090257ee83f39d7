using Seg.Core.Native;

namespace Seg.Tests;

public class TorchThreadsTests
{
    [Theory]
    // usable cores, host CPUs, cores other processes kept busy -> threads
    [InlineData(2, 2, 0.0, 2)]     // idle 2-core machine: both cores
    [InlineData(2, 2, 0.4, 2)]     // a little background work: 1.6 cores free rounds to 2
    [InlineData(2, 2, 1.0, 1)]     // one busy process: one core left
    [InlineData(2, 2, 2.0, 1)]     // both cores busy: still one thread, never zero
    [InlineData(4, 4, 2.6, 1)]     // 1.4 cores free rounds to 1
    [InlineData(4, 4, 1.4, 3)]     // 2.6 cores free rounds to 3
    [InlineData(2, 16, 3.0, 2)]    // a 2-core quota on a 16-core host with room: the quota, not the host, bounds it
    [InlineData(2, 16, 15.5, 1)]   // the same quota on a host that other containers fill
    public void OneThreadPerFreeUsableCore(int usable, int host, double busy, int expected)
    {
        Assert.Equal(expected, TorchThreads.Decide(usable, host, busy).Threads);
    }

    [Fact]
    public void ReasonNamesTheQuotaAndTheLoad()
    {
        var quota = TorchThreads.Decide(2, 16, 3.0);
        Assert.Contains("2 of the host's 16 cores usable", quota.Reason);
        Assert.Contains("3.0 busy with other work", quota.Reason);
        Assert.Contains("idle", TorchThreads.Decide(2, 2, 0.1).Reason);
        Assert.Equal("1 thread (as configured)", TorchThreads.Choose(1).ToString());
        Assert.Equal("3 threads (as configured)", TorchThreads.Choose(3).ToString());
    }

    [Fact]
    public void UnknownLoadUsesEveryUsableCore()
    {
        var choice = TorchThreads.Decide(3, 8, null);
        Assert.Equal(3, choice.Threads);
        Assert.Contains("load unknown", choice.Reason);
    }

    [Fact]
    public void ReadsProcStatAndOwnCpuTime()
    {
        // The aggregate line of /proc/stat: user nice system idle iowait irq softirq steal (guest fields left out).
        Assert.Equal((1000L + 20 + 300 + 5000 + 80 + 7 + 3 + 10, 5000L + 80),
            CpuLoad.ParseStat("cpu  1000 20 300 5000 80 7 3 10 0 0"));
        Assert.Null(CpuLoad.ParseStat("cpu0 1 2 3 4 5"));
        // utime and stime are fields 14 and 15; a command name with spaces and parentheses must not shift them.
        Assert.Equal(123L + 45, CpuLoad.ParseSelf("4242 (a b) c) S 1 2 3 4 5 6 7 8 9 10 123 45 0 0 20 0 1 0"));
    }

    [Fact]
    public void SamplesTheLoadOnLinux()
    {
        // On Linux both files are readable, so the load is known (a null would make the choice blind).
        Assert.Equal(OperatingSystem.IsLinux(), CpuLoad.SampleOthersBusyCores(TimeSpan.FromMilliseconds(50), CpuLoad.HostCpus()) is not null);
    }
}

public class ThreadTunerTests
{
    readonly List<int> set = [];
    TimeSpan now = TimeSpan.Zero;

    ThreadChoice? Step(ThreadTuner tuner, Func<int, double> msAt)
    {
        tuner.BeforeStep();
        return tuner.AfterStep(TimeSpan.FromMilliseconds(msAt(tuner.Threads)));
    }

    [Fact]
    public void ProbesAtOnceAndKeepsTheFasterCount()
    {
        var tuner = new ThreadTuner(usableCores: 2, initial: 1, set.Add, () => now);
        ThreadChoice? result = null;
        // Two threads take half the time: 3 timed steps on 1, one dropped step after the switch, 3 timed on 2.
        for (var i = 0; i < 2 * ThreadTuner.ProbeSteps + 1; i++)
        {
            Assert.True(tuner.Probing || i == 0);
            result = Step(tuner, t => t == 1 ? 200 : 100);
            if (i < 2 * ThreadTuner.ProbeSteps) Assert.Null(result);
        }
        Assert.Equal(new ThreadChoice(2, "timed: 200 ms a step on 1 thread, 100 ms on 2"), result);
        Assert.Equal([2], set);
        Assert.False(tuner.Probing);

        // Until the next probe is due the count stays, whatever the steps take.
        now = ThreadTuner.ReprobeInterval - TimeSpan.FromSeconds(1);
        for (var i = 0; i < 10; i++) Assert.Null(Step(tuner, _ => 1000));
        Assert.Equal(2, tuner.Threads);
        Assert.Equal([2], set);
    }

    [Fact]
    public void ReprobesAndFollowsALoadThatChanged()
    {
        var tuner = new ThreadTuner(usableCores: 4, initial: 4, set.Add, () => now);
        for (var i = 0; i < 3 * ThreadTuner.ProbeSteps; i++) Assert.Null(Step(tuner, t => t == 1 ? 300 : 100));
        Assert.False(tuner.Probing);
        Assert.Equal(4, tuner.Threads);   // four threads won and were already announced: nothing to say
        Assert.Equal([1, 4], set);

        // Other work took the cores: one thread is now the faster, found at the next probe.
        now = ThreadTuner.ReprobeInterval + TimeSpan.FromSeconds(1);
        ThreadChoice? result = null;
        for (var i = 0; i < 3 * ThreadTuner.ProbeSteps && result is null; i++) result = Step(tuner, t => t == 1 ? 150 : 400);
        Assert.Equal(1, result?.Threads);
        Assert.Equal(1, tuner.Threads);
        Assert.Equal([1, 4, 1, 4, 1], set);
    }

    [Fact]
    public void NothingToTuneWhenTheUserChose()
    {
        Assert.Null(ThreadTuner.For(new ThreadChoice(2, "as configured"), requested: 2));
        Assert.Null(ThreadTuner.For(new ThreadChoice(3, TorchThreads.FromEnvironment), requested: 0));
    }
}
