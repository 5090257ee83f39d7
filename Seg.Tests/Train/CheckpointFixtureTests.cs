using Seg.Core;
using Seg.Tests.Fuzz;
using Seg.Train.Checkpoints;
using static TorchSharp.torch;

namespace Seg.Tests.Train;

/// <summary>
/// The committed checkpoints (Fixtures/checkpoints, written by <see cref="CheckpointFixtures.Write"/>) still load, and
/// load exactly what they hold: every tensor of the model, the loss and the optimizer equals, byte for byte, the
/// bytes that the documented layout puts in the file (walked independently of the reader), and the RNG and AdamW's
/// step counts are restored. What a run saved before resumes now.
/// </summary>
[Collection("Trainer")]
public class CheckpointFixtureTests
{
    public CheckpointFixtureTests() => SegRuntime.Initialize();

    [Theory]
    [InlineData("sgd.ckpt")]
    [InlineData("adamw.ckpt")]
    public void CommittedCheckpointLoadsExactlyWhatItHolds(string name)
    {
        var path = Path.Combine(AppContext.BaseDirectory, "Fixtures", "checkpoints", name);
        var bytes = File.ReadAllBytes(path);
        var model = CheckpointFixtures.Net();
        var loss = CheckpointFixtures.Loss();
        var opt = CheckpointFixtures.Optimizer(name, model);
        var state = CheckpointFile.Load(path, model, opt, loss);
        CheckpointFile.RestoreRng(state.RngState);

        var header = CheckpointBytes.Header(bytes);
        Assert.Equal(Convert.FromBase64String(header["RngState"]!.GetValue<string>()), CheckpointFile.CaptureRng());
        Assert.Equal(["background", "square", "disc"], state.ClassNames);

        var live = new Dictionary<(string, string), Tensor>();
        foreach (var (k, v) in model.state_dict()) live[("model", k)] = v;
        foreach (var (k, v) in loss.state_dict()) live[("loss", k)] = v;
        foreach (var (k, v) in CheckpointFixtures.OptimizerBuffers(opt)) live[("optimizer", k)] = v;
        var stored = CheckpointBytes.Layout(bytes).Tensors;
        Assert.Equal(stored.Count, live.Count);
        foreach (var t in stored)
        {
            var tensor = live[(t.Section, t.Name)];
            Assert.Equal(t.Shape, tensor.shape);
            using var host = tensor.detach().cpu().contiguous();
            Assert.True(bytes.AsSpan(t.DataAt, (int)t.Bytes).SequenceEqual(host.bytes), $"{t.Section} tensor '{t.Name}' differs from the file");
        }
        if (name == "adamw.ckpt")
        {
            var steps = ((TorchSharp.Modules.OptimizerHelper)opt).state_dict().State.Cast<TorchSharp.Modules.AdamW.State>().Select(s => s.step);
            Assert.All(steps, s => Assert.Equal(2, s));
        }
    }
}
