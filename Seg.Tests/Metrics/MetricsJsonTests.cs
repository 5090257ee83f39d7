using Seg.Core.Metrics;
using Seg.Train.Reports;

namespace Seg.Tests.Metrics;

public class MetricsJsonTests
{
    [Fact]
    public void HasContractKeysAndMarksExcludedClasses()
    {
        // Counts [2 1 0; 0 2 0; 1 0 1; 0 0 0]: class 3 never seen.
        var m = SegmentationMetrics.FromCounts(new long[,] { { 2, 1, 0, 0 }, { 0, 2, 0, 0 }, { 1, 0, 1, 0 }, { 0, 0, 0, 0 } }, ["a", "b", "c", "d"], 0.4, 1);
        var json = MetricsJson.ToJson(m, 100);
        Assert.Equal(5.0 / 9, (double)json["mIoU"]!, 12);
        Assert.Equal(5.0 / 7, (double)json["aAcc"]!, 12);
        Assert.Equal(13.0 / 18, (double)json["mAcc"]!, 12);
        Assert.Equal(32.0 / 45, (double)json["mDice"]!, 12);
        Assert.Equal(0.4, (double)json["image_mIoU"]!);
        Assert.Equal(100, (long)json["iterations"]!);
        var classes = json["classes"]!.AsArray();
        Assert.Equal("b", (string)classes[1]!["name"]!);
        Assert.Equal(1.0, (double)classes[1]!["acc"]!);
        Assert.Null(classes[3]!["iou"]);
        Assert.True((bool)classes[3]!["excluded"]!);
    }
}
