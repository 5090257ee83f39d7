using Seg.Core.Optim;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Seg.Core.Distributed;

/// <summary>
/// Averages gradients over the ranks of a <see cref="ProcessGroup"/> after backward, as PyTorch's
/// DistributedDataParallel does: parameters are packed in order into flat buckets of about
/// <c>bucketBytes</c> (one per device and dtype run), each bucket is all-reduced in one call (NCCL for CUDA, MPI
/// for the CPU) and divided by the world size, then copied back into the gradients. A parameter without a gradient
/// on this rank counts as zeros, so every rank issues the same collectives and none waits forever.
/// </summary>
/// <remarks>Not overlapped with backward: the buckets are reduced after <c>loss.backward()</c> returns.</remarks>
public sealed class GradientReducer
{
    /// <summary>PyTorch DDP's default bucket size, 25 MiB.</summary>
    public const long DefaultBucketBytes = 25L << 20;

    readonly ProcessGroup group;
    readonly List<Parameter[]> buckets = [];
    readonly FlatParameters? flat;

    /// <summary>Buckets for the trainable parameters among <paramref name="parameters"/>, in their order.</summary>
    public GradientReducer(ProcessGroup group, IEnumerable<Parameter> parameters, long bucketBytes = DefaultBucketBytes)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bucketBytes);
        this.group = group;
        var current = new List<Parameter>();
        long bytes = 0;
        foreach (var p in parameters.Where(p => p.requires_grad))
        {
            long size = p.numel() * p.ElementSize;
            if (current.Count > 0 && (bytes + size > bucketBytes || !SameKind(current[0], p)))
            {
                buckets.Add([.. current]);
                (current, bytes) = ([], 0);
            }
            current.Add(p);
            bytes += size;
        }
        if (current.Count > 0) buckets.Add([.. current]);
    }

    /// <summary>One bucket: the gradients of a flat optimizer (<see cref="IFlatOptimizer"/>), which already lie in
    /// one buffer, all-reduced in place with no packing or copying back.</summary>
    public GradientReducer(ProcessGroup group, FlatParameters flat)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(flat);
        (this.group, this.flat) = (group, flat);
    }

    /// <summary>Number of buckets (all-reduce calls per step).</summary>
    public int BucketCount => flat is null ? buckets.Count : 1;

    /// <summary>Replaces every gradient by its mean over the ranks (a collective: every rank calls it once per step).</summary>
    public void AverageGradients()
    {
        if (group.Size == 1) return;
        using var scope = NewDisposeScope();
        if (flat is not null)
        {
            flat.Reattach();
            group.AllReduce(flat.Gradients);
            flat.Gradients.div_(group.Size);
            return;
        }
        foreach (var bucket in buckets)
        {
            var grads = bucket.Select(p => p.grad).ToArray();
            var first = bucket[0];
            var flat = cat(grads.Select((g, i) => g is null ? zeros(bucket[i].numel(), first.dtype, first.device) : g.flatten()).ToList());
            group.AllReduce(flat);
            flat.div_(group.Size);
            long offset = 0;
            for (var i = 0; i < bucket.Length; i++)
            {
                var p = bucket[i];
                var slice = flat.narrow(0, offset, p.numel()).view(p.shape);
                if (grads[i] is { } g) g.copy_(slice);
                else p.grad = slice.clone().DetachFromDisposeScope();
                offset += p.numel();
            }
        }
    }

    /// <summary>Copies rank <paramref name="root"/>'s parameters and buffers of <paramref name="module"/> into every
    /// rank's (at the start and after a resume, so that all ranks step from the same weights).</summary>
    public static void BroadcastState(ProcessGroup group, nn.Module module, int root = 0)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(module);
        if (!group.IsDistributed) return;
        using var _ = no_grad();
        foreach (var (_, t) in module.state_dict()) group.Broadcast(t, root);
    }

    static bool SameKind(Tensor a, Tensor b) => a.dtype == b.dtype && a.device_type == b.device_type && a.device_index == b.device_index;
}
