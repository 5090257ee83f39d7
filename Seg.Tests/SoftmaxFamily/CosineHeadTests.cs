using Seg.Core;
using Seg.Models.Heads;
using static Seg.Tests.SoftmaxFamily.Oracle;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Tests.SoftmaxFamily;

public class CosineHeadTests
{
    public CosineHeadTests() => SegRuntime.Initialize();

    [Fact]
    public void LogitsAreScaledCosinesOfTheProjectedPixels()
    {
        Func<long, int, nn.Module<Tensor, Tensor>> factory = (c, k) => new CosineHead(c, k, embeddingDim: 3, scale: 5);
        using var head = factory(2, 4);
        var cosine = (CosineHead)head;
        head.to(ScalarType.Float64);
        using var features = randn(1, 2, 2, 3, dtype: ScalarType.Float64);
        using var logits = head.forward(features);
        Assert.Equal([1L, 4, 2, 3], logits.shape);

        // Oracle: project each pixel with the 1×1 kernel and bias in plain doubles, then s·cos against each class.
        var kernel = Rows(cosine.projection.weight!.reshape(3, 2));
        var bias = Values(cosine.projection.bias!);
        var classes = Rows(cosine.weight);
        var f = Values(features);
        var l = Values(logits);
        var e = Values(cosine.LastEmbedding!);
        for (var p = 0; p < 6; p++)
        {
            var pixel = new[] { f[p], f[6 + p] };
            var embedding = kernel.Select((k, d) => Dot(k, pixel) + bias[d]).ToArray();
            Close(1, Math.Sqrt(Enumerable.Range(0, 3).Sum(d => e[d * 6 + p] * e[d * 6 + p])));
            for (var c = 0; c < 4; c++)
                Close(5 * Cos(embedding, classes[c]), l[c * 6 + p]);
        }
        Assert.True(Values(logits).All(v => Math.Abs(v) <= 5 + 1e-12));
    }

    [Fact]
    public void WrongChannelCountIsAClearError()
    {
        using var head = new CosineHead(8, 3);
        var error = Assert.Throws<ArgumentException>(() => head.forward(zeros(1, 4, 2, 2)));
        Assert.Contains("[B,8,h,w]", error.Message);
        Assert.Contains("[1,4,2,2]", error.Message);
    }
}
