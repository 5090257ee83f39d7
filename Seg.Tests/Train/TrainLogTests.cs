using Seg.Train.Reports;

namespace Seg.Tests.Train;

public class TrainLogTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("seg-log-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void WritesHeaderAndEmptyCellsForInactiveTerms()
    {
        var path = Path.Combine(dir, "train_log.csv");
        using (var log = TrainLog.Open(path, ["cross_entropy", "lovasz_softmax"], null))
        {
            log.Append(1, 0.5, new Dictionary<string, double> { ["cross_entropy"] = 0.5 }, 0.01);
            log.Append(2, 0.75, new Dictionary<string, double> { ["cross_entropy"] = 0.25, ["lovasz_softmax"] = 0.5 }, 0.005);
        }
        Assert.Equal(["iteration,loss,cross_entropy,lovasz_softmax,lr", "1,0.5,0.5,,0.01", "2,0.75,0.25,0.5,0.005"], File.ReadAllLines(path));
    }

    [Fact]
    public void ResumeDropsRowsAfterTheCheckpoint()
    {
        var path = Path.Combine(dir, "train_log.csv");
        var none = new Dictionary<string, double>();
        using (var log = TrainLog.Open(path, ["ce"], null))
            for (var i = 1; i <= 5; i++) log.Append(i, i, none, 0.1);
        using (var log = TrainLog.Open(path, ["ce"], resumeIteration: 3))
            log.Append(4, 40, none, 0.1);
        var rows = TrainLog.Read(path);
        Assert.Equal(new long[] { 1, 2, 3, 4 }, rows.Select(r => r.Iteration));
        Assert.Equal(40, rows[3].Loss);
    }

    [Fact]
    public void ResumeWithOtherTermsIsRejected()
    {
        var path = Path.Combine(dir, "train_log.csv");
        using (TrainLog.Open(path, ["ce"], null)) { }
        var e = Assert.Throws<InvalidDataException>(() => TrainLog.Open(path, ["ce", "dice"], 0));
        Assert.Contains("train_log.csv", e.Message);
    }
}
