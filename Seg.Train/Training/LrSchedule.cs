using Seg.Train.Config;

namespace Seg.Train.Training;

/// <summary>
/// The learning rate as a pure function of the global iteration, so that a resumed run continues with exactly the
/// rate it would have had (TorchSharp's schedulers keep no state worth saving). Linear warm-up from
/// <c>lr × warmup_factor</c> over <c>warmup_iters</c>, then poly <c>(1 − p)^power</c>, half-cosine, or constant,
/// with p the fraction of post-warm-up iterations done, decaying towards <c>min_lr</c>.
/// </summary>
public static class LrSchedule
{
    /// <summary>The rate for the step that starts at <paramref name="iteration"/> (0-based) of <paramref name="total"/>.</summary>
    public static double At(ScheduleConfig schedule, double baseLr, long iteration, long total)
    {
        var w = schedule.WarmupIters;
        var warmup = iteration < w ? schedule.WarmupFactor + (1 - schedule.WarmupFactor) * iteration / w : 1.0;
        var p = total <= w ? 1.0 : Math.Clamp((double)(iteration - w) / (total - w), 0.0, 1.0);
        var main = schedule.Type switch
        {
            "poly" => schedule.MinLr + (baseLr - schedule.MinLr) * Math.Pow(1 - p, schedule.Power),
            "cosine" => schedule.MinLr + (baseLr - schedule.MinLr) * 0.5 * (1 + Math.Cos(Math.PI * p)),
            "constant" => baseLr,
            _ => throw new ArgumentException($"unknown schedule type '{schedule.Type}'", nameof(schedule)),
        };
        return main * warmup;
    }
}
