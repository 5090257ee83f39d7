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
public sealed record CheckpointState(
    long Iteration, double BestMeanIoU, long BestIteration, string ConfigYaml, IReadOnlyList<string> Overrides,
    IReadOnlyList<string> ClassNames, IReadOnlyList<int[]> Palette, byte[] RngState);
