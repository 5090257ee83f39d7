using Seg.Core.Losses;
using Seg.Core.Losses.LovaszLosses;
using Seg.Core.Losses.MetricLosses;
using Seg.Core.Losses.PixelLosses;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Tests.Losses;

/// <summary>
/// The losses' label-range check: at once on the CPU; deferred elsewhere (run here on CPU tensors with the deferral
/// switched on), where bad pixels are left out of the loss and <see cref="LabelChecks.ThrowIfAnyFailed"/> reports them.
/// </summary>
public class LabelCheckTests : IDisposable
{
    public LabelCheckTests() => TensorData.Init();

    public void Dispose()
    {
        LabelChecks.DeferOnCpu = false;
        LabelChecks.DiscardPending();
    }

    static (Tensor Logits, Tensor Labels, Tensor Clean) Case()
    {
        var g = new Generator(3);
        var logits = randn([2, 3, 4, 4], generator: g);
        var clean = randint(0, 3, [2, 4, 4], generator: g);
        var labels = clean.clone();
        labels[0, 1, 2] = tensor(7L);
        labels[1, 3, 0] = tensor(-2L);
        return (logits, labels, clean.index_put_(tensor(255L), TensorIndex.Tensor(labels.ne(clean))));
    }

    public static TheoryData<string> Losses() => ["cross_entropy", "weighted_cross_entropy", "lovasz", "lovasz_histogram", "dice", "focal"];

    static nn.Module<Tensor, Tensor, Tensor> Create(string name) => name switch
    {
        "cross_entropy" => new SoftmaxCrossEntropyLoss(),
        "weighted_cross_entropy" => new SoftmaxCrossEntropyLoss([1, 2, 0.5]),
        "lovasz" => new LovaszSoftmaxLoss(),
        "lovasz_histogram" => new LovaszSoftmaxLoss(bins: 64),
        "dice" => new DiceLoss(),
        _ => new FocalLoss(),
    };

    [Theory]
    [MemberData(nameof(Losses))]
    public void OnTheCpuABadLabelThrowsAtOnce(string name)
    {
        using var scope = NewDisposeScope();
        var (logits, labels, _) = Case();
        var e = Assert.Throws<ArgumentException>(() => Create(name).call(logits, labels));
        Assert.Contains("hold 7: label 7 is outside the 3 classes [0,3)", e.Message);
        LabelChecks.ThrowIfAnyFailed();                                          // nothing was deferred
    }

    [Theory]
    [MemberData(nameof(Losses))]
    public void DeferredBadLabelsAreIgnoredThenReported(string name)
    {
        using var scope = NewDisposeScope();
        var (logits, labels, clean) = Case();
        var loss = Create(name);
        double expected = loss.call(logits, clean).item<float>();
        LabelChecks.DeferOnCpu = true;
        Assert.Equal(expected, loss.call(logits, labels).item<float>(), 6);   // bad pixels count as ignored
        loss.call(logits, clean);                                               // a later clean call keeps the failure
        var e = Assert.Throws<ArgumentException>(LabelChecks.ThrowIfAnyFailed);
        Assert.Contains("labels [2,4,4] hold 7: label 7 is outside the 3 classes [0,3)", e.Message);
        LabelChecks.ThrowIfAnyFailed();                                          // read once, then forgotten
        loss.call(logits, clean);
        LabelChecks.ThrowIfAnyFailed();
    }

    [Fact]
    public void DeferredChecksOfSeveralLossesAreReadTogether()
    {
        using var scope = NewDisposeScope();
        var (logits, labels, clean) = Case();
        LabelChecks.DeferOnCpu = true;
        new LovaszSoftmaxLoss().call(logits, clean);
        new LovaszHingeLoss().call(logits[.., 0], labels.clamp(0, 1).index_put_(tensor(2L), TensorIndex.Tensor(labels.eq(7))));
        var e = Assert.Throws<ArgumentException>(LabelChecks.ThrowIfAnyFailed);
        Assert.Contains("label 2 is outside the 2 classes [0,2) of binary logits [2,4,4]", e.Message);
    }
}
