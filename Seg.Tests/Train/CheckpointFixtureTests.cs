using Seg.Core;
using Seg.Tests.Fuzz;
using Seg.Train.Checkpoints;
using static TorchSharp.torch;

namespace Seg.Tests.Train;

/// <summary>
/// The committed checkpoints (Fixtures/checkpoints, written by <see cref="CheckpointFixtures.Write"/>) still load
/// into exactly the state their recipe produces: what a run saved yesterday resumes today.
/// </summary>
[Collection("Trainer")]
public class CheckpointFixtureTests
{
    public CheckpointFixtureTests() => SegRuntime.Initialize();

    [Theory]
    [InlineData("sgd.ckpt")]
    [InlineData("adamw.ckpt")]
    public void CommittedCheckpointResumesToTheRecipesState(string name)
    {
        var path = Path.Combine(AppContext.BaseDirectory, "Fixtures", "checkpoints", name);
        if (Environment.GetEnvironmentVariable("SEG_WRITE_CHECKPOINT_FIXTURES") is { Length: > 0 } target)
            CheckpointFixtures.Write(target);

        var expected = Path.Combine(Directory.CreateTempSubdirectory("seg-fixture-").FullName, name);
        try
        {
            var (model, opt, loss, state) = CheckpointFixtures.Make(name);
            CheckpointFile.Save(expected, state, model, opt, loss);
            Assert.Equal(CheckpointFixtures.Resume(expected), CheckpointFixtures.Resume(path));
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(expected)!, recursive: true);
        }
    }
}
