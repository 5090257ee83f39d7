using Seg.Core;
using Seg.Core.Distributed;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Seg.Tests.Distributed;

/// <summary>The MPI binding, gradient averaging and SyncBatchNorm across two real processes (mpirun -np 2).</summary>
public class MpiCollectiveTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("seg-mpi-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    static readonly TimeSpan Limit = TimeSpan.FromMinutes(3);

    [MpiFact]
    public void Collectives_and_gradient_buckets_give_the_hand_computed_values()
    {
        var result = MpiJob.Run(2, [.. MpiJob.Child, "collectives"], dir, Limit);
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("rank 0: ok", result.Stdout);
        Assert.Contains("rank 1: ok", result.Stdout);
    }

    [MpiFact]
    public void A_rank_that_throws_ends_the_job_although_the_other_waits_in_a_collective()
    {
        var result = MpiJob.Run(2, [.. MpiJob.Child, "throw-on-rank", "1"], dir, Limit);
        Assert.False(result.TimedOut, result.ToString());
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("rank 1: InvalidOperationException: deliberate failure on rank 1", result.Stderr);
        Assert.True(result.Elapsed < TimeSpan.FromSeconds(60), result.ToString());
    }

    // Oracle: a plain BatchNorm2d in this process over the whole batch of 8; the job's two ranks see 4 images each.
    [MpiFact]
    public void SyncBatchNorm_on_two_ranks_equals_BatchNorm_on_the_concatenated_batch_forward_and_backward()
    {
        SegRuntime.Initialize();
        var gen = new Generator(17);
        var x = (randn(MpiChild.SyncBnShape, generator: gen) * 3 + 2).to(ScalarType.Float32);
        var g = randn(MpiChild.SyncBnShape, generator: gen);
        MpiChild.WriteFloats(Path.Combine(dir, "x.bin"), x);
        MpiChild.WriteFloats(Path.Combine(dir, "g.bin"), g);

        var result = MpiJob.Run(2, [.. MpiJob.Child, "syncbn", dir], dir, Limit);
        Assert.True(result.ExitCode == 0, result.ToString());

        var bn = nn.BatchNorm2d(3);
        using (no_grad())
        {
            bn.weight.copy_(tensor(MpiChild.BnWeight));
            bn.bias!.copy_(tensor(MpiChild.BnBias));
        }
        bn.train();
        var xr = x.clone().requires_grad_();
        var y = bn.forward(xr);
        (y * g).sum().backward();
        var shape = new long[] { 4, 3, 5, 5 };
        var ySync = cat([MpiChild.ReadFloats(Path.Combine(dir, "y0.bin"), shape), MpiChild.ReadFloats(Path.Combine(dir, "y1.bin"), shape)]);
        var gxSync = cat([MpiChild.ReadFloats(Path.Combine(dir, "gx0.bin"), shape), MpiChild.ReadFloats(Path.Combine(dir, "gx1.bin"), shape)]);
        AssertClose(y.detach(), ySync, "output");
        AssertClose(xr.grad!, gxSync, "input gradient");
        AssertClose(bn.weight.grad!, MpiChild.ReadFloats(Path.Combine(dir, "gw.bin"), [3]), "weight gradient");
        AssertClose(bn.bias!.grad!, MpiChild.ReadFloats(Path.Combine(dir, "gb.bin"), [3]), "bias gradient");
        AssertClose(bn.running_mean!, MpiChild.ReadFloats(Path.Combine(dir, "running_mean.bin"), [3]), "running mean");
        AssertClose(bn.running_var!, MpiChild.ReadFloats(Path.Combine(dir, "running_var.bin"), [3]), "running variance (unbiased)");
        bn.eval();
        using (no_grad())
        {
            var yEval = bn.forward(x);
            AssertClose(yEval.narrow(0, 0, 4), MpiChild.ReadFloats(Path.Combine(dir, "eval0.bin"), shape), "eval-mode output");
            AssertClose(yEval.narrow(0, 4, 4), MpiChild.ReadFloats(Path.Combine(dir, "eval1.bin"), shape), "eval-mode output of rank 1");
        }
    }

    internal static void AssertClose(Tensor expected, Tensor actual, string what, double rtol = 1e-4, double atol = 1e-5)
    {
        Assert.Equal(expected.shape, actual.shape);
        var maxDiff = (expected - actual).abs().max().ToDouble();
        Assert.True(expected.allclose(actual, rtol, atol), $"{what}: max |difference| {maxDiff:G4}");
    }
}
