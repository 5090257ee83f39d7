using Xunit.Abstractions;

namespace Seg.Tests.Fuzz;

/// <summary>
/// The default run's fuzz subset for checkpoints and configs (a few hundred cases, the crafted ones of issue 13
/// included), through the shared harness: each case read in a child process under the memory limit and watchdog.
/// The long run (<c>Category=Fuzz</c>) covers these formats with every other.
/// </summary>
public sealed class CheckpointConfigFuzzTests(ITestOutputHelper output)
{
    /// <summary>The formats of this subset.</summary>
    public static readonly string[] Formats = ["ckpt", "ckpt-rehashed", "yaml"];

    [Fact]
    public void ShortSubsetOfCheckpointsAndConfigsKeepsTheContract() =>
        new FuzzTests(output).RunAndAssert(MutationPlan.Short, masterSeed: 13, reportPath: null, Formats);
}
