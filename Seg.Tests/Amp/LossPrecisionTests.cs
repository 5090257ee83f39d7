using Seg.Core.Amp;
using Seg.Core.Losses.LovaszLosses;
using Seg.Core.Losses.MarginSoftmax;
using Seg.Core.Losses.MetricLosses;
using Seg.Core.Losses.PixelLosses;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Tests.Amp;

/// <summary>
/// Every Seg loss computes in float32 whatever precision its input arrives in: with bfloat16 or float16 logits
/// (under autocast or not) its value and gradient equal those of the same logits converted to float32 first, and
/// it returns float32.
/// </summary>
public class LossPrecisionTests
{
    const long B = 2, C = 4, D = 8, H = 5, W = 6;

    public enum Input { MultiClass, Binary, Embedding, ScaledCosine, StudentTeacher }

    static nn.Module<Tensor, Tensor, Tensor> Create(string name) => name switch
    {
        "ce" => new SoftmaxCrossEntropyLoss(),
        "focal" => new FocalLoss(),
        "bce" => new BinaryCrossEntropyLoss(),
        "dice" => new DiceLoss(),
        "dice_metric" => new DiceMetricLoss(perImage: 1, perClass: 1),
        "jaccard_metric" => new JaccardMetricLoss(),
        "tversky" => new TverskyLoss(alpha: 0.3, beta: 0.7),
        "lovasz_softmax" => new LovaszSoftmaxLoss(perImage: true),
        "lovasz_hinge" => new LovaszHingeLoss(),
        "lovasz_sigmoid" => new LovaszSigmoidLoss(),
        "am_softmax" => new AmSoftmaxLoss(D, C),
        "arcface" => new ArcFaceLoss(D, C),
        "large_margin" => new LargeMarginSoftmaxLoss(D, C),
        "center" => new CenterLoss(D, C),
        "margin_ce" => new MarginCrossEntropyLoss(MarginKind.ArcFace, scale: 16, margin: 0.3),
        "kd" => new SoftmaxWithTemperature(),
        _ => throw new ArgumentException(name),
    };

    static Input InputOf(string name) => name switch
    {
        "bce" or "lovasz_hinge" => Input.Binary,
        "am_softmax" or "arcface" or "large_margin" or "center" => Input.Embedding,
        "margin_ce" => Input.ScaledCosine,
        "kd" => Input.StudentTeacher,
        _ => Input.MultiClass,
    };

    public static TheoryData<string, ScalarType, bool> Cases()
    {
        var data = new TheoryData<string, ScalarType, bool>();
        foreach (var name in new[] { "ce", "focal", "bce", "dice", "dice_metric", "jaccard_metric", "tversky", "lovasz_softmax",
                     "lovasz_hinge", "lovasz_sigmoid", "am_softmax", "arcface", "large_margin", "center", "margin_ce", "kd" })
            foreach (var dtype in new[] { ScalarType.BFloat16, ScalarType.Float16 })
                foreach (var underAutocast in new[] { false, true })
                    data.Add(name, dtype, underAutocast);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Reduced_precision_input_gives_the_float32_loss_and_gradient(string name, ScalarType dtype, bool underAutocast)
    {
        using var scope = NewDisposeScope();
        var generator = new Generator(11);
        var input = InputOf(name);
        var (raw, second) = input switch
        {
            Input.MultiClass => (randn(new[] { B, C, H, W }, generator: generator) * 3, LabelsWithIgnored(generator, C)),
            Input.Binary => (randn(new[] { B, H, W }, generator: generator) * 3, LabelsWithIgnored(generator, 2)),
            Input.Embedding => (randn(new[] { B, D, H, W }, generator: generator), LabelsWithIgnored(generator, C)),
            Input.ScaledCosine => ((rand(new[] { B, C, H, W }, generator: generator) * 2 - 1) * 16, LabelsWithIgnored(generator, C)),
            _ => (randn(new[] { B, C, H, W }, generator: generator) * 3, randn(new[] { B, C, H, W }, generator: generator) * 3),
        };
        // values representable in the reduced dtype, so that both paths see the same numbers
        var reduced = raw.to(dtype).detach().requires_grad_();
        var asFloat = reduced.detach().to(ScalarType.Float32).requires_grad_();
        var teacher = input == Input.StudentTeacher ? second.to(dtype) : second;
        var teacherFloat = input == Input.StudentTeacher ? teacher.to(ScalarType.Float32) : second;
        var loss = Create(name);

        var expected = loss.call(asFloat, teacherFloat);
        Tensor actual;
        using (underAutocast ? Autocast.Enable(DeviceType.CPU, dtype) : null)
            actual = loss.call(reduced, teacher);

        Assert.Equal(ScalarType.Float32, expected.dtype);
        Assert.Equal(ScalarType.Float32, actual.dtype);
        Assert.Equal(expected.item<float>(), actual.item<float>(), 1e-6f * Math.Max(1f, Math.Abs(expected.item<float>())));

        expected.backward();
        actual.backward();
        var grad = reduced.grad!;
        Assert.Equal(dtype, grad.dtype);
        // the reduced input's gradient is the float32 gradient rounded once to its dtype
        Assert.True(grad.to(ScalarType.Float32).allclose(asFloat.grad!.to(dtype).to(ScalarType.Float32), rtol: 0, atol: 0),
            $"{name}: {dtype} gradient differs from the float32 one rounded to {dtype}");
    }

    static Tensor LabelsWithIgnored(Generator generator, long classes)
    {
        var labels = randint(0, classes, new[] { B, H, W }, generator: generator);
        var ignored = rand(new[] { B, H, W }, generator: generator).lt(0.15);
        return labels.masked_fill(ignored, 255);
    }
}
