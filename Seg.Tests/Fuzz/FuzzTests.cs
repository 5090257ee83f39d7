using System.Globalization;
using System.Text;
using Xunit.Abstractions;

namespace Seg.Tests.Fuzz;

/// <summary>
/// Mutation fuzzing of every reader against the hostile-input contract (docs/robustness.md), each case read in a
/// child process under a memory limit and a watchdog. The short subset runs in the default test run; the long run is
/// opt-in (<c>Category=Fuzz</c>), with knobs in environment variables:
/// <c>SEG_FUZZ_SEED</c> (master seed, default 13), <c>SEG_FUZZ_FLIPS</c> (random mutations per seed and structured
/// ones per format, default 400), <c>SEG_FUZZ_FORMATS</c> (comma-separated format names), <c>SEG_FUZZ_CASE</c> (run only
/// case ids containing this), <c>SEG_FUZZ_REPORT</c> (report file) and <c>SEG_FUZZ_KEEP</c> (folder to copy the files
/// of contract-breaking cases to).
/// </summary>
public sealed class FuzzTests(ITestOutputHelper output)
{
    [Fact]
    public void ShortSubsetKeepsTheContract() => RunAndAssert(MutationPlan.Short, masterSeed: 13, reportPath: null);

    [Fact]
    [Trait("Category", "Fuzz")]
    public void LongRunKeepsTheContract()
    {
        int seed = int.TryParse(Environment.GetEnvironmentVariable("SEG_FUZZ_SEED"), CultureInfo.InvariantCulture, out var s) ? s : 13;
        int flips = int.TryParse(Environment.GetEnvironmentVariable("SEG_FUZZ_FLIPS"), CultureInfo.InvariantCulture, out var f) ? f : 400;
        RunAndAssert(MutationPlan.Long(flips), seed, Environment.GetEnvironmentVariable("SEG_FUZZ_REPORT")
            ?? Path.Combine(AppContext.BaseDirectory, "fuzz-report.txt"));
    }

    void RunAndAssert(MutationPlan plan, int masterSeed, string? reportPath)
    {
        var only = Environment.GetEnvironmentVariable("SEG_FUZZ_FORMATS")?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var caseFilter = Environment.GetEnvironmentVariable("SEG_FUZZ_CASE");
        var keep = Environment.GetEnvironmentVariable("SEG_FUZZ_KEEP");
        var formats = FuzzFormats.All.Where(f => only is null || only.Contains(f.Name)).ToList();
        var results = new List<(IFuzzFormat Format, FuzzCase Case, FuzzResult Result)>();
        using (var runner = new FuzzRunner(FuzzLimits.Default))
        {
            foreach (var format in formats)
            {
                string? seedDigest = null;
                foreach (var c in Mutator.Cases(format, plan, masterSeed))
                {
                    if (caseFilter is not null && !c.Id.Contains(caseFilter, StringComparison.Ordinal)) continue;
                    var r = runner.Run(format, c);
                    if (c.Id.EndsWith("/seed", StringComparison.Ordinal)) seedDigest = r.Digest;
                    else if (c.Id.EndsWith("/unreadable-seed", StringComparison.Ordinal)) seedDigest = null;
                    results.Add((format, c, r with { Digest = r.Outcome == FuzzOutcome.Read && r.Digest == seedDigest ? "same" : r.Digest }));
                }
            }
            output.WriteLine($"{results.Count} cases, {runner.ChildrenStarted} child process(es), master seed {masterSeed}");
        }

        var report = Report(results);
        output.WriteLine(report);
        if (reportPath is not null) File.WriteAllText(reportPath, report);

        var seedsFailing = results.Where(r => r.Case.Id.EndsWith("/seed", StringComparison.Ordinal) && r.Result.Outcome != FuzzOutcome.Read).ToList();
        var broken = results.Where(r => !r.Result.KeepsContract).ToList();
        if (keep is not null && broken.Count > 0)
        {
            Directory.CreateDirectory(keep);
            foreach (var (format, c, _) in broken)
                File.WriteAllBytes(Path.Combine(keep, c.Id.Replace('/', '_') + Path.GetExtension(format.FileName)), format.Encode(c.Bytes));
        }
        Assert.True(seedsFailing.Count == 0, "seed files must read: " + string.Join("; ", seedsFailing.Select(r => $"{r.Case.Id}: {r.Result.Exception} {r.Result.Message}")));
        Assert.True(broken.Count == 0, $"{broken.Count} case(s) broke the contract:\n" +
            string.Join("\n", broken.Take(40).Select(r => $"{r.Case.Id}: {r.Result.Outcome} {r.Result.Exception}: {r.Result.Message}")));
    }

    /// <summary>Counts by format and outcome (reads split into same-as-seed and changed), the slowest case and the
    /// largest memory rise per format, then every contract-breaking case.</summary>
    static string Report(List<(IFuzzFormat Format, FuzzCase Case, FuzzResult Result)> results)
    {
        var sb = new StringBuilder();
        var outcomes = Enum.GetValues<FuzzOutcome>();
        sb.AppendLine($"{"format",-14} {"cases",6} {"read=",6} {"read≠",6} " + string.Join(" ", outcomes.Skip(1).Select(o => $"{o,11}")) + "   max ms  max MB");
        foreach (var g in results.GroupBy(r => r.Format.Name))
        {
            var rs = g.Select(x => x.Result).ToList();
            int same = rs.Count(r => r.Outcome == FuzzOutcome.Read && r.Digest == "same");
            int changed = rs.Count(r => r.Outcome == FuzzOutcome.Read) - same;
            sb.Append($"{g.Key,-14} {rs.Count,6} {same,6} {changed,6} ");
            sb.Append(string.Join(" ", outcomes.Skip(1).Select(o => $"{rs.Count(r => r.Outcome == o),11}")));
            sb.AppendLine($" {rs.Max(r => r.Milliseconds),8:F0} {rs.Max(r => r.PeakMegabytes),7:F0}");
        }
        sb.AppendLine($"{"total",-14} {results.Count,6}");
        var slow = results.OrderByDescending(r => r.Result.Milliseconds).First();
        sb.AppendLine($"slowest: {slow.Case.Id} {slow.Result.Milliseconds:F0} ms ({slow.Result.Outcome})");
        var big = results.OrderByDescending(r => r.Result.PeakMegabytes).First();
        sb.AppendLine($"largest memory rise: {big.Case.Id} {big.Result.PeakMegabytes:F0} MB ({big.Result.Outcome})");
        foreach (var g in results.Where(r => r.Result.Outcome == FuzzOutcome.Read && r.Result.Digest != "same").GroupBy(r => r.Format.Name))
            sb.AppendLine($"read≠ in {g.Key} (content differs from the seed's; fine where the format has no checksum over it): {string.Join(", ", g.Take(200).Select(r => r.Case.Id))}");
        foreach (var (_, c, r) in results.Where(r => !r.Result.KeepsContract))
            sb.AppendLine($"BROKEN {c.Id}: {r.Outcome} {r.Exception}: {r.Message}");
        return sb.ToString();
    }
}
