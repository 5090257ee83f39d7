using Seg.Data;
using Seg.Train.Config;
using Seg.Train.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Train.Checkpoints;

/// <summary>A model rebuilt from a checkpoint alone (it carries its config, class names and palette), with the
/// checkpoint's weights, in eval mode on the CPU: what <c>predict</c> and <c>export</c> start from.</summary>
/// <param name="Path">The checkpoint file.</param>
/// <param name="State">Its header.</param>
/// <param name="Config">The training config it was written with (overrides applied).</param>
/// <param name="Model">The network with the checkpoint's weights, in eval mode.</param>
public sealed record CheckpointModel(string Path, CheckpointState State, TrainConfig Config, nn.Module<Tensor, Tensor> Model)
{
    /// <summary>Reads <paramref name="checkpoint"/> through <see cref="CheckpointFile"/>; <paramref name="overrides"/>
    /// (<c>--set</c>) apply after the checkpoint's own.</summary>
    /// <exception cref="InvalidDataException">Not a Seg checkpoint, or weights that do not fit its config's model.</exception>
    public static CheckpointModel Load(string checkpoint, IReadOnlyList<string>? overrides = null)
    {
        var state = CheckpointFile.ReadState(checkpoint);
        var config = ConfigLoader.Parse(state.ConfigYaml, checkpoint, [.. state.Overrides, .. overrides ?? []]);
        var model = RunFactory.CreateModel(config.Model, state.ClassNames.Count, checkpoint);
        CheckpointFile.Load(checkpoint, model);
        model.eval();
        return new CheckpointModel(checkpoint, state, config, model);
    }

    /// <summary>The dataset palette, one RGB colour per class.</summary>
    public IReadOnlyList<(byte R, byte G, byte B)> Palette => State.Palette.Select(c => ((byte)c[0], (byte)c[1], (byte)c[2])).ToList();

    /// <summary>The validation pipeline of the checkpoint's config (what <c>eval</c> and <c>predict</c> apply).</summary>
    public TransformPipeline ValPipeline() => RunFactory.ValPipeline(Config.Data, RunFactory.TrainPipeline(Config.Data, Path), Path);
}
