using Seg.Core.Losses;
using Seg.Core.Losses.LovaszLosses;
using Seg.Core.Losses.MetricLosses;
using Seg.Core.Losses.PixelLosses;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Tests.Losses;

public class CompositeLossTests
{
    public CompositeLossTests() => TensorData.Init();

    /// <summary>A loss that returns a fixed multiple of the logits' sum and counts its calls.</summary>
    sealed class CountingLoss(double factor) : nn.Module<Tensor, Tensor, Tensor>("counting")
    {
        public int Calls { get; private set; }
        public override Tensor forward(Tensor logits, Tensor labels)
        {
            Calls++;
            return logits.sum() * factor;
        }
    }

    [Fact]
    public void WeightFollowsTheSchedule()
    {
        var term = new LossTerm("lovasz", new CountingLoss(1), Weight: 2.0, Start: 0.5, End: 0.8);
        Assert.Equal(0.0, CompositeLoss.WeightAt(term, 0.0));
        Assert.Equal(0.0, CompositeLoss.WeightAt(term, 0.4999));
        Assert.Equal(2.0, CompositeLoss.WeightAt(term, 0.5));
        Assert.Equal(2.0, CompositeLoss.WeightAt(term, 0.7999));
        Assert.Equal(0.0, CompositeLoss.WeightAt(term, 0.8));
        var tail = term with { End = 1.0 };
        Assert.Equal(2.0, CompositeLoss.WeightAt(tail, 1.0));
        Assert.Equal(0.0, CompositeLoss.WeightAt(term with { Start = 0.0 }, 1.0));
    }

    [Fact]
    public void SumsActiveTermsAndSkipsInactiveOnes()
    {
        using var scope = NewDisposeScope();
        var ce = new CountingLoss(1.0);
        var lovasz = new CountingLoss(10.0);
        var composite = new CompositeLoss([new LossTerm("ce", ce), new LossTerm("lovasz", lovasz, Weight: 0.5, Start: 0.5)]);
        var x = tensor(new[] { 1.0, 2.0 }).requires_grad_(true);
        var y = zeros(2, dtype: ScalarType.Int64);

        composite.Progress = 0.25;
        Assert.Equal(3.0, composite.call(x, y).item<double>(), 12);
        Assert.Equal(0, lovasz.Calls);
        Assert.Equal(new[] { "ce" }, composite.LastValues.Keys);
        Assert.Equal(3.0, composite.LastValues["ce"], 12);

        composite.Progress = 0.75;
        var total = composite.call(x, y);
        Assert.Equal(3.0 + 0.5 * 30.0, total.item<double>(), 12);
        Assert.Equal(30.0, composite.LastValues["lovasz"], 12);  // unweighted
        Assert.Equal(1, lovasz.Calls);
        total.backward();
        Assert.Equal(new[] { 6.0, 6.0 }, TensorData.Values(x.grad!));
    }

    [Fact]
    public void TermsAreSubmodulesAndNamesAreUnique()
    {
        var composite = new CompositeLoss([new LossTerm("ce", new SoftmaxCrossEntropyLoss()), new LossTerm("lovasz", new LovaszSoftmaxLoss())]);
        Assert.Equal(new[] { "ce", "lovasz" }, composite.named_children().Select(c => c.name));
        Assert.Equal(2, composite.Terms.Count);
        Assert.Contains("'ce' is used twice",
            Assert.Throws<ArgumentException>(() => new CompositeLoss([new LossTerm("ce", new SoftmaxCrossEntropyLoss()), new LossTerm("ce", new DiceLoss())])).Message);
        Assert.Throws<ArgumentException>(() => new CompositeLoss([new LossTerm("a", new DiceLoss(), Start: 0.6, End: 0.5)]));
        Assert.Throws<ArgumentException>(() => new CompositeLoss([]));
        Assert.Throws<ArgumentOutOfRangeException>(() => composite.Progress = 1.5);
    }

    [Fact]
    public void FineTuningRecipeOnRealLosses()
    {
        // CE alone, then CE + Lovász-Softmax from half of training.
        using var scope = NewDisposeScope();
        var composite = new CompositeLoss([
            new LossTerm("ce", new SoftmaxCrossEntropyLoss()),
            new LossTerm("lovasz", new LovaszSoftmaxLoss(), Start: 0.5)]);
        var x = randn(2, 3, 4, 4, dtype: ScalarType.Float64);
        var y = randint(0, 3, [2, 4, 4]);
        composite.Progress = 0.9;
        double total = composite.call(x, y).item<double>();
        double ce = new SoftmaxCrossEntropyLoss().call(x, y).item<double>();
        double lovasz = Lovasz.Softmax(x.softmax(1), y).item<double>();
        Assert.Equal(ce + lovasz, total, 10);
        Assert.Equal(lovasz, composite.LastValues["lovasz"], 10);
    }

    [Fact]
    public void AScheduledTermCannotRunWithoutProgress()
    {
        using var scope = NewDisposeScope();
        var x = tensor(new[] { 1.0, 2.0 }).requires_grad_(true);
        var y = zeros(2, dtype: ScalarType.Int64);
        var scheduled = new CompositeLoss([new LossTerm("ce", new CountingLoss(1.0)), new LossTerm("late", new CountingLoss(10.0), Start: 0.5)]);
        var e = Assert.Throws<InvalidOperationException>(() => scheduled.call(x, y));
        Assert.Contains("'late'", e.Message);
        Assert.Contains("no progress", e.Message);
        // Progress passed with the call: the late term is on at 0.75, off at 0.25.
        Assert.Equal(3.0 + 30.0, scheduled.call(x, y, 0.75).item<double>(), 12);
        Assert.Equal(0.75, scheduled.Progress);
        Assert.Equal(3.0, scheduled.call(x, y, 0.25).item<double>(), 12);
        Assert.Throws<ArgumentOutOfRangeException>(() => scheduled.call(x, y, 1.5));
        // Without a schedule nothing needs the progress.
        var plain = new CompositeLoss([new LossTerm("ce", new CountingLoss(1.0))]);
        Assert.Equal(3.0, plain.call(x, y).item<double>(), 12);
    }
}
