using Seg.Core.Losses.PixelLosses;
using Seg.Core.Metrics;
using static TorchSharp.torch;

#pragma warning disable CS0618   // the point: the former names still work for one release

namespace Seg.Tests.Losses;

/// <summary>The names renamed by issue 21 keep working, as aliases of the new ones, for one release.</summary>
public class ObsoleteNamesTests
{
    [Fact]
    public void CrossEntropyLossIsTheSoftmaxCrossEntropyLoss()
    {
        Seg.Core.SegRuntime.Initialize();
        var logits = randn(2, 3, 4, 4, dtype: ScalarType.Float64);
        var labels = randint(0, 3, [2, 4, 4]);
        var old = new CrossEntropyLoss([1.0, 2.0, 0.5], labelSmoothing: 0.1, temperature: 2);
        Assert.IsAssignableFrom<SoftmaxCrossEntropyLoss>(old);
        Assert.Equal(new SoftmaxCrossEntropyLoss([1.0, 2.0, 0.5], labelSmoothing: 0.1, temperature: 2).call(logits, labels).item<double>(),
                     old.call(logits, labels).item<double>());
        Assert.Single(typeof(CrossEntropyLoss).GetCustomAttributes(typeof(ObsoleteAttribute), false));
    }

    [Fact]
    public void ImageMeanIoUIsMeanIoUPerImageGtOrPredicted()
    {
        var m = new SegmentationMetrics([], 0.5, 0.9, 0.6, 0.7, 0.42, 10, 2);
        Assert.Equal(0.42, m.ImageMeanIoU);
        Assert.Equal(0.42, m.MeanIoUPerImageGtOrPredicted);
    }
}
