using System.Runtime.InteropServices;
using Seg.Core;
using Seg.Core.Distributed;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Seg.Tests.Distributed;

/// <summary>
/// One rank of a test job: <c>mpirun -np 2 dotnet Seg.Tests.dll mpi-child SCENARIO DIR</c>. Each scenario checks
/// what it can against hand-computed values and writes what the test process must compare (raw float32 files) into
/// DIR; a failed check throws, the rank aborts the job, and the exit code tells the test.
/// </summary>
public static class MpiChild
{
    public const string Verb = "mpi-child";

    public static int Run(string[] args)
    {
        SegRuntime.Initialize();
        set_num_threads(1);
        using var group = ProcessGroup.Initialize();
        try
        {
            switch (args)
            {
                case ["collectives"]: Collectives(group); break;
                case ["syncbn", var dir]: SyncBn(group, dir); break;
                case ["throw-on-rank", var rank]:
                    if (group.Rank == int.Parse(rank)) throw new InvalidOperationException($"deliberate failure on rank {group.Rank}");
                    group.Barrier();   // the other ranks wait here for a rank that never comes
                    break;
                default: throw new ArgumentException($"unknown mpi-child scenario: {string.Join(' ', args)}");
            }
            Console.WriteLine($"rank {group.Rank}: ok");
            return 0;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"rank {group.Rank}: {e.GetType().Name}: {e.Message}");
            group.Abort(1);
            return 1;
        }
    }

    static void Check(bool ok, string what)
    {
        if (!ok) throw new InvalidOperationException("check failed: " + what);
    }

    static void Collectives(ProcessGroup group)
    {
        int r = group.Rank, n = group.Size;
        long s = n * (n + 1) / 2;   // Σ (rank + 1)

        float[] f = [r + 1, 2 * (r + 1)];
        group.AllReduce<float>(f);
        Check(f[0] == s && f[1] == 2 * s, $"float sum: [{f[0]}, {f[1]}], expected [{s}, {2 * s}]");

        long[] lo = [r, -r], hi = [r, -r];
        group.AllReduce<long>(lo, ReduceOp.Min);
        group.AllReduce<long>(hi, ReduceOp.Max);
        Check(lo[0] == 0 && lo[1] == -(n - 1) && hi[0] == n - 1 && hi[1] == 0, "int64 min/max");

        double[] d = r == n - 1 ? [Math.PI, -1e300] : [0, 0];
        group.Broadcast<double>(d, root: n - 1);
        Check(d[0] == Math.PI && d[1] == -1e300, "double broadcast from the last rank");

        var bytes = group.Broadcast(r == 0 ? "hello ranks"u8.ToArray() : null);
        Check(System.Text.Encoding.UTF8.GetString(bytes) == "hello ranks", "variable-length broadcast");
        var all = group.AllGather(System.Text.Encoding.UTF8.GetBytes(new string('x', r + 1)));
        Check(all.Count == n && all.Select((b, i) => b.Length == i + 1).All(x => x), "all-gather of differing lengths");

        // A non-contiguous CPU tensor (a transposed view) is reduced through a dense copy and written back.
        var t = arange(6, ScalarType.Float32).view(2, 3).add(r).t();
        group.AllReduce(t);
        var expected = (arange(6, ScalarType.Float32).view(2, 3) * n + n * (n - 1) / 2.0).t();
        Check(t.allclose(expected), "tensor all-reduce of a transposed view");

        // Gradient averaging over buckets of 16 bytes (one or two parameters each); the third parameter has no
        // gradient on rank 0 and counts as zeros there.
        var ps = new[] { new Parameter(zeros(3)), new Parameter(zeros(2, 2)), new Parameter(zeros(5)) };
        for (var i = 0; i < ps.Length; i++)
            if (!(i == 2 && r == 0)) ps[i].grad = full(ps[i].shape, (float)(10 * i + r), ScalarType.Float32);
        var reducer = new GradientReducer(group, ps, bucketBytes: 16);
        Check(reducer.BucketCount == 3, $"{reducer.BucketCount} buckets, expected 3");
        reducer.AverageGradients();
        for (var i = 0; i < ps.Length; i++)
        {
            double mean = i == 2 ? Enumerable.Range(1, n - 1).Sum(k => 20.0 + k) / n : 10 * i + (n - 1) / 2.0;
            Check(ps[i].grad is { } g && g.allclose(full(ps[i].shape, (float)mean, ScalarType.Float32)), $"averaged gradient {i}, expected {mean}");
        }
    }

    /// <summary>The SyncBN scenario's fixed affine parameters (3 channels), also used by the test's oracle.</summary>
    public static readonly float[] BnWeight = [1.5f, 0.5f, -1.0f], BnBias = [0.1f, -0.2f, 0.3f];

    public static readonly long[] SyncBnShape = [8, 3, 5, 5];

    static void SyncBn(ProcessGroup group, string dir)
    {
        long per = SyncBnShape[0] / group.Size;
        var x = ReadFloats(Path.Combine(dir, "x.bin"), SyncBnShape).narrow(0, group.Rank * per, per).contiguous().requires_grad_();
        var g = ReadFloats(Path.Combine(dir, "g.bin"), SyncBnShape).narrow(0, group.Rank * per, per);
        var model = nn.Sequential(("conv", nn.Identity()), ("bn", nn.BatchNorm2d(3)));
        using (no_grad())
        {
            var bn = (BatchNorm2d)model.named_children().Single(c => c.name == "bn").module;
            bn.weight.copy_(tensor(BnWeight));
            bn.bias!.copy_(tensor(BnBias));
        }
        var keys = model.state_dict().Keys.ToList();
        Check(SyncBatchNorm.convert_sync_batchnorm(model, group) == 1, "one module converted");
        Check(model.state_dict().Keys.SequenceEqual(keys), $"state_dict keys after conversion: {string.Join(",", model.state_dict().Keys)}");
        model.train();
        var y = model.forward(x);
        (y * g).sum().backward();
        WriteFloats(Path.Combine(dir, $"y{group.Rank}.bin"), y);
        WriteFloats(Path.Combine(dir, $"gx{group.Rank}.bin"), x.grad!);
        var state = model.state_dict();
        var gw = model.parameters().First().grad!.clone();
        var gb = model.parameters().Last().grad!.clone();
        group.AllReduce(gw);   // each rank's own share; their sum is the gradient of the loss summed over the ranks
        group.AllReduce(gb);
        if (group.IsMain)
        {
            WriteFloats(Path.Combine(dir, "gw.bin"), gw);
            WriteFloats(Path.Combine(dir, "gb.bin"), gb);
            WriteFloats(Path.Combine(dir, "running_mean.bin"), state["bn.running_mean"]);
            WriteFloats(Path.Combine(dir, "running_var.bin"), state["bn.running_var"]);
        }
        // Eval mode: the running statistics, no communication (rank 0's slice only, any rank would do).
        model.eval();
        using (no_grad()) WriteFloats(Path.Combine(dir, $"eval{group.Rank}.bin"), model.forward(x));
    }

    public static Tensor ReadFloats(string path, long[] shape) =>
        tensor(MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(path)).ToArray()).view(shape);

    public static void WriteFloats(string path, Tensor t) =>
        File.WriteAllBytes(path, MemoryMarshal.AsBytes(t.detach().cpu().contiguous().to(ScalarType.Float32).data<float>().ToArray().AsSpan()).ToArray());
}
