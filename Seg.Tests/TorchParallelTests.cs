using Seg.Core;
using Seg.Core.Native;

namespace Seg.Tests;

public class TorchParallelTests
{
    public TorchParallelTests() => SegRuntime.Initialize();

    [Fact]
    public void UsesLibtorchsOpenMpTeamOnLinux()
    {
        // TorchSharp-cpu's libtorch on Linux links libgomp; the kernels must find its GOMP_parallel.
        Assert.Equal(OperatingSystem.IsLinux(), TorchParallel.OnOpenMpTeam);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4)]
    public void VisitsEveryItemOnce(int threads)
    {
        var visits = new int[1001];
        TorchParallel.For(visits.Length, i => Interlocked.Increment(ref visits[i]), threads);
        Assert.All(visits, v => Assert.Equal(1, v));
    }

    [Fact]
    public void RunsItemsConcurrently()
    {
        // Two items that each wait for the other to start can only both succeed on two threads at once.
        int started = 0, sawBoth = 0;
        TorchParallel.For(2, _ =>
        {
            Interlocked.Increment(ref started);
            if (SpinWait.SpinUntil(() => Volatile.Read(ref started) == 2, TimeSpan.FromSeconds(10)))
                Interlocked.Increment(ref sawBoth);
        }, maxThreads: 2);
        Assert.Equal(2, sawBoth);
    }

    [Fact]
    public void RethrowsTheBodysException()
    {
        var error = Assert.Throws<InvalidOperationException>(() =>
            TorchParallel.For(100, i => { if (i == 37) throw new InvalidOperationException("item 37"); }, maxThreads: 2));
        Assert.Equal("item 37", error.Message);
        // The team is still usable afterwards.
        long sum = 0;
        TorchParallel.For(10, i => Interlocked.Add(ref sum, i), maxThreads: 2);
        Assert.Equal(45, sum);
    }
}
