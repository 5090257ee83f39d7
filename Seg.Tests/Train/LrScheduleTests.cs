using Seg.Train.Config;
using Seg.Train.Training;

namespace Seg.Tests.Train;

public class LrScheduleTests
{
    [Fact]
    public void PolyMatchesFormula()
    {
        var s = new ScheduleConfig { Type = "poly", Power = 0.9 };
        Assert.Equal(0.01, LrSchedule.At(s, 0.01, 0, 100), 15);
        Assert.Equal(0.01 * Math.Pow(0.5, 0.9), LrSchedule.At(s, 0.01, 50, 100), 15);
        Assert.Equal(0.0, LrSchedule.At(s, 0.01, 100, 100), 15);
    }

    [Fact]
    public void WarmupRisesLinearlyThenMainScheduleStarts()
    {
        var s = new ScheduleConfig { Type = "constant", WarmupIters = 10, WarmupFactor = 0.1 };
        Assert.Equal(0.1, LrSchedule.At(s, 1.0, 0, 100), 15);
        Assert.Equal(0.55, LrSchedule.At(s, 1.0, 5, 100), 15);
        Assert.Equal(1.0, LrSchedule.At(s, 1.0, 10, 100), 15);
    }

    [Fact]
    public void CosineReachesMinLrAtTheEnd()
    {
        var s = new ScheduleConfig { Type = "cosine", MinLr = 0.001 };
        Assert.Equal(0.1, LrSchedule.At(s, 0.1, 0, 10), 15);
        Assert.Equal(0.001 + 0.099 * 0.5, LrSchedule.At(s, 0.1, 5, 10), 15);
        Assert.Equal(0.001, LrSchedule.At(s, 0.1, 10, 10), 15);
    }
}
