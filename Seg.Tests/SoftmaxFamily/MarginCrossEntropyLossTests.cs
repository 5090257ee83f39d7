using Seg.Core;
using Seg.Core.Losses;
using Seg.Core.Losses.MarginSoftmax;
using static Seg.Tests.SoftmaxFamily.Oracle;
using static TorchSharp.torch;

namespace Seg.Tests.SoftmaxFamily;

public class MarginCrossEntropyLossTests
{
    public MarginCrossEntropyLossTests() => SegRuntime.Initialize();

    [Theory]
    [InlineData(MarginKind.None)]
    [InlineData(MarginKind.Am)]
    [InlineData(MarginKind.ArcFace)]
    public void PixelLossIsTheMeanOverNonIgnoredPixels(MarginKind kind)
    {
        // Cosines of a [1,2,1,3] image (two classes, three pixels, the middle one ignored).
        double[][] cos = [[0.6, -0.2], [0.1, 0.9], [-0.5, 0.3]];
        long[] labels = [0, 255, 0];
        const double s = 8, m = 0.3;
        double Target(double c) => kind switch
        {
            MarginKind.Am => c - m,
            MarginKind.ArcFace => ArcFaceCos(c, m, false),
            _ => c,
        };
        var expected = new[] { 0, 2 }.Select(i =>
            CrossEntropy(cos[i].Select((c, j) => s * (j == labels[i] ? Target(c) : c)).ToArray(), labels[i])).Average();
        using var logits = (T(cos) * s).t().reshape(1, 2, 1, 3).contiguous();
        using var loss = new MarginCrossEntropyLoss(kind, s, m);
        using var value = loss.forward(logits, Labels(labels).reshape(1, 1, 3));
        Close(expected, value.item<double>());
    }

    [Fact]
    public void OnAHeadsCosineLogitsItEqualsTheModuleLoss()
    {
        using var am = new AmSoftmaxLoss(4, 3, 12, 0.25);
        using var x = randn(6, 4);
        using var y = Labels(0, 1, 2, 2, 1, 0);
        using var cosine = am.Logits(x, null);
        using var loss = new MarginCrossEntropyLoss(MarginKind.Am, 12, 0.25);
        Close(am.forward(x, y).item<float>(), loss.forward(cosine, y).item<float>(), 1e-6);
    }
}
