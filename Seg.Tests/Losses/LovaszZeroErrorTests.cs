using System.Text.Json;
using Seg.Core.Losses;
using Seg.Core.Losses.LovaszLosses;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Tests.Losses;

/// <summary>
/// Errors of exactly 0 (p = 1 on the labelled class and 0 on the others, as saturated float32 softmax gives; hinge
/// scores of exactly ±1): the official code's gradient there is 0, since torch's <c>abs</c> and <c>relu</c> have
/// derivative 0 at 0. Every Seg path (fused CPU kernel exact and histogram, generic exact and histogram, float32 and
/// float64) is compared with the official losses and gradients computed by PyTorch
/// (Fixtures/lovasz/make_reference.py, python3-torch 1.13).
/// </summary>
public class LovaszZeroErrorTests
{
    public LovaszZeroErrorTests() => TensorData.Init();

    sealed record Case(string Loss, string? Classes, bool PerImage, string Dtype, double Value, double[] Grad);

    static readonly Lazy<(JsonElement Root, Case[] Cases)> Reference = new(() =>
    {
        var root = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "lovasz", "lovasz_reference.json"))).RootElement;
        var cases = root.GetProperty("cases").EnumerateArray().Select(c => new Case(
            c.GetProperty("loss").GetString()!,
            c.GetProperty("classes").ValueKind == JsonValueKind.Null ? null : c.GetProperty("classes").GetString(),
            c.GetProperty("per_image").GetBoolean(),
            c.GetProperty("dtype").GetString()!,
            c.GetProperty("value").GetDouble(),
            c.GetProperty("grad").EnumerateArray().Select(v => v.GetDouble()).ToArray())).ToArray();
        return (root, cases);
    });

    static Tensor Input(string name, ScalarType dtype)
    {
        var e = Reference.Value.Root.GetProperty(name);
        var shape = e.GetProperty("shape").EnumerateArray().Select(v => v.GetInt64()).ToArray();
        var values = e.GetProperty("values").EnumerateArray().Select(v => v.GetDouble()).ToArray();
        // The stored values are float32 numbers (labels: integers), written exactly.
        return tensor(values, dtype: ScalarType.Float64).to(dtype).view(shape);
    }

    static ScalarType Dtype(Case c) => c.Dtype == "float64" ? ScalarType.Float64 : ScalarType.Float32;

    public static TheoryData<int> SoftmaxCases() => Cases("softmax");
    public static TheoryData<int> HingeCases() => Cases("hinge");

    static TheoryData<int> Cases(string loss)
    {
        var data = new TheoryData<int>();
        var cases = Reference.Value.Cases;
        for (int i = 0; i < cases.Length; i++)
            if (cases[i].Loss == loss) data.Add(i);
        return data;
    }

    static (double Loss, double[] Grad, Tensor RawGrad) SoftmaxRun(Case c, int bins, bool kernel)
    {
        var p = Input("probas", Dtype(c)).requires_grad_(true);
        var labels = Input("labels", ScalarType.Int64);
        var selection = c.Classes == "all" ? ClassSelection.All : ClassSelection.Present;
        var loss = Lovasz.SoftmaxWithKernelChoice(p, labels, selection, c.PerImage, 255, bins, kernel);
        loss.backward();
        return (TensorData.Values(loss)[0], TensorData.Values(p.grad!), p.grad!);
    }

    [Theory]
    [MemberData(nameof(SoftmaxCases))]
    public void SoftmaxMatchesTheOfficialCodeWhereErrorsAreZero(int index)
    {
        using var scope = NewDisposeScope();
        var c = Reference.Value.Cases[index];
        bool single = Dtype(c) == ScalarType.Float32;
        double tolerance = single ? 2e-6 : 1e-12;
        var zeros = Enumerable.Range(0, c.Grad.Length).Where(i => c.Grad[i] == 0).ToArray();
        Assert.NotEmpty(zeros);

        // The case bites: pixels with error 0 whose Lovász weight is not 0 (the kernels used to give them ±weight).
        var p = Input("probas", ScalarType.Float64);
        var labels = Input("labels", ScalarType.Int64).view(2, 1, 20);
        var valid = labels.ne(255);
        var foreground = labels.eq(arange(3).view(1, 3, 1)) & valid;
        var errors = (foreground.to(ScalarType.Float64) - p.view(2, 3, 20)).abs();
        var weights = LovaszWeights.ExactGeneric(errors, foreground, valid, c.PerImage);
        Assert.True((errors.eq(0) & valid & weights.gt(0)).any().item<bool>());

        foreach (var kernel in single ? new[] { true, false } : [false])
        {
            var (loss, grad, _) = SoftmaxRun(c, bins: 0, kernel);
            Assert.Equal(c.Value, loss, tolerance);
            for (int i = 0; i < grad.Length; i++) Assert.Equal(c.Grad[i], grad[i], tolerance);
            Assert.All(zeros, i => Assert.Equal(0.0, grad[i]));
        }
        if (single) TensorData.AssertBitwiseEqual(SoftmaxRun(c, 0, kernel: true).RawGrad, SoftmaxRun(c, 0, kernel: false).RawGrad);

        // Histogram mode: within 1/bins of the loss, and the same zero gradient (fused kernel with its vector code:
        // 20 pixels per image run two eight-wide steps and a scalar tail).
        const int bins = 4096;
        foreach (var kernel in single ? new[] { true, false } : [false])
        {
            var (loss, grad, _) = SoftmaxRun(c, bins, kernel);
            Assert.Equal(c.Value, loss, 1.0 / bins);
            Assert.All(zeros, i => Assert.Equal(0.0, grad[i]));
        }
        if (single) TensorData.AssertBitwiseEqual(SoftmaxRun(c, bins, kernel: true).RawGrad, SoftmaxRun(c, bins, kernel: false).RawGrad);
    }

    [Theory]
    [MemberData(nameof(HingeCases))]
    public void HingeMatchesTheOfficialCodeWhereErrorsAreZero(int index)
    {
        using var scope = NewDisposeScope();
        var c = Reference.Value.Cases[index];
        double tolerance = Dtype(c) == ScalarType.Float32 ? 2e-6 : 1e-12;
        var scores = Input("scores", Dtype(c)).requires_grad_(true);
        var loss = Lovasz.Hinge(scores, Input("hinge_labels", ScalarType.Int64), c.PerImage);
        loss.backward();
        Assert.Equal(c.Value, TensorData.Values(loss)[0], tolerance);
        var grad = TensorData.Values(scores.grad!);
        Assert.Contains(c.Grad, g => g == 0);
        for (int i = 0; i < grad.Length; i++) Assert.Equal(c.Grad[i], grad[i], tolerance);
        for (int i = 0; i < grad.Length; i++) if (c.Grad[i] == 0) Assert.Equal(0.0, grad[i]);
    }
}
