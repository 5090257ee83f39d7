using Seg.Core;
using Seg.Train.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Tests.Train;

[Collection("Trainer")]
public class CheckpointFileTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("seg-ckpt-").FullName;

    public CheckpointFileTests() => SegRuntime.Initialize();

    public void Dispose() => Directory.Delete(dir, recursive: true);

    static CheckpointState State(long iteration) =>
        new(iteration, 0.5, 3, "name: t\n", ["train.iterations=4"], ["bg", "fg"], [[0, 0, 0], [255, 0, 0]], CheckpointFile.CaptureRng());

    // Two SGD+momentum steps with dropout (so that the RNG matters) on a tiny network.
    static void Step(nn.Module<Tensor, Tensor> model, optim.Optimizer opt, Tensor x, Tensor y)
    {
        using var scope = NewDisposeScope();
        opt.zero_grad();
        var loss = nn.functional.mse_loss(model.forward(x), y);
        loss.backward();
        opt.step();
    }

    static nn.Module<Tensor, Tensor> Net() => nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.ReLU(), nn.Linear(8, 2));

    [Fact]
    public void ResumedTrainingIsBitIdenticalToUninterrupted()
    {
        var x = randn(16, 4, generator: new Generator(1));
        var y = randn(16, 2, generator: new Generator(2));

        manual_seed(0);
        var a = Net();
        var optA = optim.SGD(a.parameters(), 0.1, momentum: 0.9);
        for (var i = 0; i < 4; i++) Step(a, optA, x, y);

        manual_seed(0);
        var b = Net();
        var optB = optim.SGD(b.parameters(), 0.1, momentum: 0.9);
        for (var i = 0; i < 2; i++) Step(b, optB, x, y);
        var path = Path.Combine(dir, "last.ckpt");
        CheckpointFile.Save(path, State(2), b, optB);
        for (var i = 0; i < 5; i++) rand(3); // disturb the generator, as the rest of a killed run would

        manual_seed(123);
        var c = Net();
        var optC = optim.SGD(c.parameters(), 0.1, momentum: 0.9);
        var state = CheckpointFile.Load(path, c, optC);
        CheckpointFile.RestoreRng(state.RngState);
        for (var i = 0; i < 2; i++) Step(c, optC, x, y);

        foreach (var (pa, pc) in a.parameters().Zip(c.parameters()))
            Assert.True(pa.Equals(pc), "parameters differ after resume");
    }

    [Fact]
    public void HeaderRoundTrips()
    {
        var path = Path.Combine(dir, "best.ckpt");
        var model = Net();
        CheckpointFile.Save(path, State(7), model, null);
        var state = CheckpointFile.ReadState(path);
        Assert.Equal(7, state.Iteration);
        Assert.Equal(["bg", "fg"], state.ClassNames);
        Assert.Equal(new[] { 255, 0, 0 }, state.Palette[1]);
        Assert.Equal("name: t\n", state.ConfigYaml);
        Assert.Empty(Directory.GetFiles(dir, "*.tmp"));
    }

    [Fact]
    public void SaveReplacesExistingFile()
    {
        var path = Path.Combine(dir, "last.ckpt");
        var model = Net();
        CheckpointFile.Save(path, State(1), model, null);
        CheckpointFile.Save(path, State(2), model, null);
        Assert.Equal(2, CheckpointFile.ReadState(path).Iteration);
        Assert.Single(Directory.GetFiles(dir));
    }

    [Fact]
    public void ForeignFileIsRejectedNamingIt()
    {
        var path = Path.Combine(dir, "junk.ckpt");
        File.WriteAllText(path, "not a checkpoint");
        var e = Assert.Throws<InvalidDataException>(() => CheckpointFile.ReadState(path));
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void ResumeFromWeightsOnlyCheckpointIsRejected()
    {
        var path = Path.Combine(dir, "best.ckpt");
        var model = Net();
        CheckpointFile.Save(path, State(1), model, null);
        var opt = optim.SGD(model.parameters(), 0.1);
        var e = Assert.Throws<InvalidDataException>(() => CheckpointFile.Load(path, model, opt));
        Assert.Contains("no optimizer state", e.Message);
    }

    [Fact]
    public void MismatchedModelIsRejected()
    {
        var path = Path.Combine(dir, "m.ckpt");
        CheckpointFile.Save(path, State(1), Net(), null);
        var other = nn.Sequential(nn.Linear(4, 3));
        Assert.ThrowsAny<Exception>(() => CheckpointFile.Load(path, other));
    }
}
