using Seg.Models;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Seg.Tests.Models;

public class ModelBehaviourTests
{
    public ModelBehaviourTests() => Seg.Core.SegRuntime.Initialize();

    [Theory]
    [InlineData("unet", true)]
    [InlineData("unet", false)]
    [InlineData("unet_resnet34", false)]
    [InlineData("deeplabv3plus_resnet50", true)]
    public void GradientsReachEveryParameter(string name, bool aux)
    {
        var options = new ModelOptions { UnetBaseWidth = 4, UnetDepth = 3, UnetBilinear = aux, AuxHead = aux && name.StartsWith("deeplab") };
        using var model = ModelFactory.Create(name, 3, options);
        model.train();
        using var scope = NewDisposeScope();
        var (outLogits, auxLogits) = ((ISegmentationModel)model).ForwardWithAux(randn(2, 3, 35, 29));
        var loss = outLogits.square().mean();
        if (auxLogits is not null) loss = loss + auxLogits.square().mean();
        loss.backward();
        foreach (var (pname, p) in model.named_parameters())
        {
            using var g = p.grad;
            Assert.True(g is not null, $"{pname} got no gradient");
            Assert.True(g!.abs().sum().item<float>() > 0, $"{pname} got an all-zero gradient");
        }
    }

    [Fact]
    public void TrainModeUsesBatchStatisticsAndUpdatesRunningStats()
    {
        using var model = ModelFactory.Create("resnet18", 4);
        var modules = model.named_modules().ToDictionary(m => m.name, m => m.module);
        var conv1 = (Conv2d)modules["conv1"];
        var bn1 = (BatchNorm2d)modules["bn1"];
        using var scope = NewDisposeScope();
        var x = randn(3, 3, 32, 32);

        model.train();
        model.forward(x);
        // PyTorch's rule with momentum 0.1 from running_mean = 0, running_var = 1: new = 0.9·old + 0.1·batch statistic
        // (variance unbiased), computed here from conv1's output independently of BatchNorm2d.
        Tensor c;
        using (no_grad()) c = conv1.forward(x).to_type(ScalarType.Float64);
        var mean = c.mean([0, 2, 3]);
        var variance = c.var([0, 2, 3], unbiased: true);
        Assert.True(bn1.running_mean!.to_type(ScalarType.Float64).allclose(mean * 0.1, rtol: 1e-4, atol: 1e-6));
        Assert.True(bn1.running_var!.to_type(ScalarType.Float64).allclose(variance * 0.1 + 0.9, rtol: 1e-4, atol: 1e-6));
        Assert.Equal(1L, bn1.num_batches_tracked!.item<long>());

        model.eval();
        using (no_grad())
        {
            var before = bn1.running_mean!.clone();
            var a = model.forward(x);
            var b = model.forward(x[..1]); // eval: an image's logits do not depend on the rest of the batch
            Assert.True(a[..1].allclose(b, rtol: 1e-4, atol: 1e-5));
            Assert.True(bn1.running_mean!.Equals(before));
            Assert.Equal(1L, bn1.num_batches_tracked!.item<long>());
        }
        model.train();
        using (no_grad())
        {
            var a = model.forward(x);
            var b = model.forward(x[..1].repeat(3, 1, 1, 1));
            Assert.False(a[..1].allclose(b[..1], rtol: 1e-3, atol: 1e-4)); // train: batch statistics differ
        }
    }

    [Theory]
    [InlineData(true, 1, 1)]
    [InlineData(true, 5, 7)]
    [InlineData(false, 17, 9)]
    [InlineData(false, 33, 64)]
    public void UNetAcceptsSizesThatAreNotMultiplesOfTwoToTheDepth(bool bilinear, int h, int w)
    {
        using var model = ModelFactory.Create("unet", 2, new ModelOptions { UnetDepth = 4, UnetBaseWidth = 4, UnetBilinear = bilinear });
        model.eval();
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var x = randn(2, 3, h, w);
        var y = model.forward(x);
        Assert.Equal([2L, 2, h, w], y.shape);
        // Padding stays internal: each image's logits come from that image alone (eval mode).
        Assert.True(y[1..].allclose(model.forward(x[1..]), rtol: 1e-4, atol: 1e-5));
    }

    [Fact]
    public void UNetDepthAndWidthShapeTheParameters()
    {
        using var model = ModelFactory.Create("unet", 2, new ModelOptions { UnetDepth = 2, UnetBaseWidth = 3, UnetBilinear = false });
        var shapes = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        Assert.Equal([3L, 3, 3, 3], shapes["inc.0.weight"]);
        Assert.Equal([12L, 6, 3, 3], shapes["downs.1.0.weight"]);      // 6 → 12 channels, deepest stage
        Assert.Equal([12L, 6, 2, 2], shapes["ups.0.up.weight"]);       // transposed conv halves channels
        Assert.Equal([6L, 12, 3, 3], shapes["ups.0.conv.0.weight"]);   // skip (6) + up-sampled (6)
        Assert.Equal([2L, 3, 1, 1], shapes["classifier.weight"]);
        Assert.DoesNotContain("downs.2.0.weight", shapes.Keys);
    }

    [Theory]
    [InlineData("deeplabv3_resnet50", 256, "classifier.4.weight")]
    [InlineData("deeplabv3plus_resnet50", 256, "classifier.classifier.6.weight")]
    [InlineData("unet", 8, "classifier.weight")]
    [InlineData("unet_resnet34", 16, "classifier.weight")]
    public void HeadFactoryBuildsTheFinalClassifier(string name, long expectedInChannels, string defaultHeadKey)
    {
        var calls = new List<(long, int)>();
        var options = new ModelOptions
        {
            UnetBaseWidth = 8, UnetDepth = 2,
            HeadFactory = (inC, classes) => { calls.Add((inC, classes)); return new ConstantHead(classes); },
        };
        using var model = ModelFactory.Create(name, 6, options);
        Assert.Equal([(expectedInChannels, 6)], calls);
        Assert.DoesNotContain(defaultHeadKey, model.state_dict().Keys);
        using (var plain = ModelFactory.Create(name, 6, options with { HeadFactory = null }))
            Assert.Equal([6L, expectedInChannels, 1, 1], plain.state_dict()[defaultHeadKey].shape);
        model.eval();
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var y = model.forward(randn(1, 3, 20, 24));
        Assert.Equal([1L, 6, 20, 24], y.shape);
        Assert.True(y.allclose(full_like(y, 7.0))); // the head's constant, bilinearly resized, is still the constant
    }

    /// <summary>A parameter-free head that outputs 7 everywhere: shows the model really uses the factory's module.</summary>
    sealed class ConstantHead(int classes) : Module<Tensor, Tensor>(nameof(ConstantHead))
    {
        public override Tensor forward(Tensor x) => full(x.shape[0], classes, x.shape[2], x.shape[3], 7.0f, dtype: x.dtype, device: x.device);
    }
}
