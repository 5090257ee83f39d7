using Seg.Core.Losses;
using Seg.Core.Losses.LovaszLosses;
using Seg.Core.Losses.MetricLosses;
using Seg.Core.Losses.PixelLosses;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Tests.Losses;

/// <summary>
/// The losses of a training step read nothing back from the device, forward or backward: they run on the meta
/// device, whose tensors have shapes and dtypes but no data. There, any read of a value on the host
/// (<c>item</c>, <c>ToDouble</c>, <c>cpu()</c>, tensor-to-bool) throws, and so does any operator whose output size
/// depends on the data (<c>nonzero</c>, <c>masked_select</c>, boolean-mask indexing, <c>bincount</c>): no meta
/// kernel can exist for those. On a GPU these are exactly the calls that make the host wait for the device.
/// <para>
/// libtorch 2.10 lacks meta kernels for some ordinary operators too. The losses under test avoid them where a
/// plain equivalent exists; where ATen's own fused loss kernel lacks one (<c>nll_loss2d</c> of cross-entropy,
/// <c>log_sigmoid</c> of BCE, the <c>where</c> of <c>clamp_min</c>'s backward in focal loss), the test checks that
/// the run got that far, i.e. that everything before that operator ran without reading data.
/// </para>
/// </summary>
public class NoHostSyncTests : IDisposable
{
    static readonly Device Meta = new(DeviceType.META);
    const int B = 2, C = 4, H = 6, W = 5;

    public NoHostSyncTests() => TensorData.Init();

    // Label checks deferred on meta tensors can never be read: drop them so no later test on this thread sees them.
    public void Dispose() => LabelChecks.DiscardPending();

    static Tensor Logits(bool binary = false) => randn(binary ? [B, H, W] : [B, C, H, W], device: Meta).requires_grad_(true);
    static Tensor Labels(int classes = C) => randint(0, classes, [B, H, W], device: Meta);

    /// <summary>Runs forward and backward; a data read or an operator without a meta kernel fails the test,
    /// unless it is <paramref name="expectedStop"/>, which must then be reached.</summary>
    static void ForwardBackward(Func<Tensor, Tensor> loss, Tensor logits, string? expectedStop = null)
    {
        using var scope = NewDisposeScope();
        try
        {
            var value = loss(logits);
            Assert.Equal(DeviceType.META, value.device_type);
            Assert.Empty(value.shape);
            value.backward();
            Assert.Equal(DeviceType.META, logits.grad!.device_type);
        }
        catch (Exception e) when (expectedStop is not null && e.Message.Contains($"{expectedStop}: attempted to run this operator with Meta tensors"))
        {
            return;
        }
        Assert.Null(expectedStop);
    }

    [Theory]
    [InlineData(0, false, "present")]
    [InlineData(0, true, "all")]
    [InlineData(0, false, "only")]
    [InlineData(4096, false, "present")]
    [InlineData(4096, true, "only")]
    public void LovaszSoftmax(int bins, bool perImage, string selection)
    {
        var classes = selection switch { "present" => ClassSelection.Present, "all" => ClassSelection.All, _ => ClassSelection.Only(3, 1) };
        ForwardBackward(x => new LovaszSoftmaxLoss(classes, perImage, 255, bins).call(x, Labels()), Logits());
        ForwardBackward(x => Lovasz.Softmax(x.sigmoid(), Labels(2), ClassSelection.Only(0, 1), perImage, 255, bins), Logits(binary: true));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void LovaszHinge(bool perImage) =>
        ForwardBackward(x => new LovaszHingeLoss(perImage).call(x, Labels(2)), Logits(binary: true));

    [Theory]
    [InlineData(1, 0, 0)]
    [InlineData(1, 1, 1)]
    [InlineData(0, 0.5, 0.5)]
    public void MetricLossesOnHardAndSoftLabels(double perDataset, double perImage, double perClass)
    {
        ForwardBackward(x => new JaccardMetricLoss(perDataset, perImage, perClass).call(x, Labels()), Logits());
        ForwardBackward(x => new DiceMetricLoss(perDataset, perImage, perClass, gamma: 2, logLoss: true).call(x, Labels()), Logits());
        ForwardBackward(x => new TverskyLoss(0.3, 0.7, 1.5, perDataset, perImage, perClass).call(x, Labels()), Logits());
        ForwardBackward(x => new JaccardMetricLoss(perDataset, perImage, perClass, classWeights: [1, 2, 1, 0.5])
                                 .call(x, SoftLabels.BoundarySmoothing(Labels(), C)), Logits());
        ForwardBackward(x => new JaccardMetricLoss(perDataset, perImage, perClass).call(x, x.detach().softmax(1)), Logits());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void LovaszSigmoid(bool perImage)
    {
        ForwardBackward(x => new LovaszSigmoidLoss(perImage).call(x, Labels()), Logits());
        ForwardBackward(x => Lovasz.Sigmoid(x.sigmoid(), randint(0, 2, [B, C, H, W], device: Meta), perImage, ignoreIndex: 255), Logits());
    }

    [Fact]
    public void CompositeOfPixelLosses()
    {
        var composite = new CompositeLoss([
            new LossTerm("lovasz", new LovaszSoftmaxLoss()),
            new LossTerm("lovasz_hist", new LovaszSoftmaxLoss(bins: 256), Weight: 0.5),
            new LossTerm("dice", new DiceLoss(), Weight: 0.25)]);
        ForwardBackward(x => composite.call(x, Labels()), Logits());
    }

    [Fact]
    public void PixelLossesUpToAtenKernelsWithoutMetaKernels()
    {
        ForwardBackward(x => new DiceLoss().call(x, Labels()), Logits());
        ForwardBackward(x => new SoftmaxCrossEntropyLoss().call(x, Labels()), Logits(), "aten::nll_loss2d_forward");
        ForwardBackward(x => new SoftmaxCrossEntropyLoss([1, 2, 0.5, 1], labelSmoothing: 0.1, temperature: 2).call(x, Labels()), Logits(), "aten::nll_loss2d_forward");
        ForwardBackward(x => new BinaryCrossEntropyLoss(2).call(x, Labels(2)), Logits(binary: true), "aten::log_sigmoid_forward");
        // Focal loss's forward runs through; its backward stops at clamp_min's where.
        using (var scope = NewDisposeScope()) Assert.Equal(DeviceType.META, new FocalLoss().call(Logits(), Labels()).device_type);
        ForwardBackward(x => new FocalLoss().call(x, Labels()), Logits(), "aten::where.self");
    }

    [Fact]
    public void TheMetaDeviceCatchesHostReadsAndDataDependentShapes()
    {
        // What the tests above rely on: each of these throws on meta tensors.
        using var scope = NewDisposeScope();
        var x = randn(8, device: Meta);
        var labels = randint(0, 4, [8], device: Meta);
        Action[] reads =
        [
            () => x.sum().item<float>(),
            () => x.sum().ToDouble(),
            () => x.cpu(),
            () => _ = x.gt(0).any().item<bool>(),
            () => x.gt(0).nonzero(),
            () => x.masked_select(x.gt(0)),
            () => bincount(labels, minlength: 4),
        ];
        foreach (var read in reads) Assert.ThrowsAny<Exception>(read);
    }
}
