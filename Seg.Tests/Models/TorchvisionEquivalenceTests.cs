using Seg.Models;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Seg.Tests.Models;

/// <summary>
/// Same weights, same input → same output as torchvision. Needs files from Fixtures/models/export_equivalence.py
/// (Debian's python3-torchvision) in the folder named by SEG_EQUIV_DIR; without it the test returns at once.
/// </summary>
[Trait("Category", "Heavy")]
public class TorchvisionEquivalenceTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("resnet50", 1000)]
    [InlineData("deeplabv3_resnet50", 21)]
    public void OutputsEqualTorchvisions(string name, int classes)
    {
        Seg.Core.SegRuntime.Initialize();
        var dir = Environment.GetEnvironmentVariable("SEG_EQUIV_DIR");
        if (dir is null || !File.Exists(Path.Combine(dir, $"{name}.pth")))
        {
            output.WriteLine("SEG_EQUIV_DIR not set or files absent: nothing to compare.");
            return;
        }
        using var model = ModelFactory.Create(name, classes, new ModelOptions { AuxHead = name.StartsWith("deeplab") });
        var report = StateDict.LoadInto(model, Path.Combine(dir, $"{name}.pth"));
        Assert.True(report.IsExact, report.ToString());
        var io = StateDict.Read(Path.Combine(dir, $"{name}_io.pth"));
        model.eval();
        using var _ = no_grad();
        var (y, aux) = model is ISegmentationModel seg ? seg.ForwardWithAux(io["input"]) : (model.forward(io["input"]), null);
        Compare($"{name} out", y, io["output"]);
        if (io.TryGetValue("aux", out var auxReference)) Compare($"{name} aux", aux!, auxReference);
    }

    void Compare(string what, Tensor y, Tensor reference) => ModelFixtures.AssertClose(output, what, y, reference);
}
