using Seg.Train.Config;

namespace Seg.Tests.Train;

public class ClosestKeyTests
{
    [Theory]
    [InlineData("kitten", "sitting", 3)]
    [InlineData("lr", "rl", 1)]
    [InlineData("", "abc", 3)]
    [InlineData("same", "same", 0)]
    public void DistanceMatchesHandCount(string a, string b, int expected) => Assert.Equal(expected, ClosestKey.Distance(a, b));

    [Fact]
    public void PicksNearestCandidate() =>
        Assert.Equal("weight_decay", ClosestKey.Find("wieght_decay", ["lr", "momentum", "weight_decay"]));
}
