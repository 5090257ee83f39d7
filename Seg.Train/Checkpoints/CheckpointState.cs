namespace Seg.Train.Checkpoints;

/// <summary>
/// Everything in a checkpoint besides tensors: where training stands, the recipe that produced it (so that
/// <c>eval</c> and <c>predict</c> can rebuild the model from the checkpoint alone) and the CPU RNG state.
/// </summary>
/// <param name="Iteration">Optimizer steps completed.</param>
/// <param name="BestMeanIoU">Best validation mIoU so far (-1 before the first evaluation).</param>
/// <param name="BestIteration">Iteration of <paramref name="BestMeanIoU"/>.</param>
/// <param name="ConfigYaml">The config file's YAML text.</param>
/// <param name="Overrides">The <c>--set</c> overrides applied to it.</param>
/// <param name="ClassNames">Dataset class names.</param>
/// <param name="Palette">Dataset palette, one RGB triple per class.</param>
/// <param name="RngState">torch's CPU generator state (bytes of <c>torch.random.get_rng_state()</c>).</param>
/// <param name="Precision">The precision the run trained in (<c>fp32</c>, <c>bf16</c>, <c>fp16</c>); checkpoints
/// written before mixed precision read as fp32.</param>
/// <param name="Scaler">The fp16 loss scaler's state, null for other precisions.</param>
public sealed record CheckpointState(
    long Iteration, double BestMeanIoU, long BestIteration, string ConfigYaml, IReadOnlyList<string> Overrides,
    IReadOnlyList<string> ClassNames, IReadOnlyList<int[]> Palette, byte[] RngState,
    string Precision = "fp32", Seg.Core.Amp.GradScalerState? Scaler = null)
{
    /// <summary>
    /// What is wrong with a header read from a file, in words, or null when every field is plausible: the
    /// commands that use it (<c>predict</c> indexes the palette by class, <c>--resume</c> hands the RNG state to
    /// libtorch) may then rely on it.
    /// </summary>
    /// <summary>The most classes a checkpoint may name (segmentation datasets have up to a few thousand).</summary>
    public const int MaxClasses = 65536;

    internal string? Problem()
    {
        // The JSON reader refuses missing and null properties; list elements can still be null.
        if (Iteration < 0) return $"iteration {Iteration} is negative";
        if (BestIteration < 0) return $"best iteration {BestIteration} is negative";
        if (Overrides.Any(o => o is null)) return "an override is null";
        // predict builds a model with one output per class before it reads the weights: bound what a header can ask.
        if (ClassNames.Count is 0 or > MaxClasses) return $"it names {ClassNames.Count} classes; 1 to {MaxClasses} are allowed";
        if (ClassNames.Any(n => n is null)) return "a class name is null";
        if (Palette.Count < ClassNames.Count) return $"its palette has {Palette.Count} colours for {ClassNames.Count} classes";
        for (var i = 0; i < Palette.Count; i++)
            if (Palette[i] is not { Length: 3 } c || c.Any(v => v is < 0 or > 255))
                return $"palette entry {i} is not an RGB triple of 0..255";
        if (Precision is not ("fp32" or "bf16" or "fp16")) return $"precision '{Precision}' is not fp32, bf16 or fp16";
        if (Scaler is { } sc && (!(sc.Scale > 0) || !float.IsFinite(sc.Scale) || sc.GrowthInterval < 1 || sc.GrowthTracker < 0 ||
                                 sc.GrowthTracker >= sc.GrowthInterval || !(sc.GrowthFactor > 1) || !(sc.BackoffFactor is > 0 and < 1)))
            return $"its grad scaler state {sc} is not plausible";
        return CpuRngState.Problem(RngState);
    }
}
