using System.Collections;
using System.Reflection;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Seg.Core.Distributed;

/// <summary>
/// Batch normalisation whose batch statistics are those of the global batch, the union of every rank's batch
/// (<c>torch.nn.SyncBatchNorm</c>): in training, each rank sums its activations and their squares per channel,
/// one all-reduce gives the global sums, and every rank normalises with the global mean and (biased) variance; the
/// backward pass all-reduces the two per-channel sums the input gradient needs. Running statistics are updated
/// from the global batch (unbiased variance), the same on every rank. In eval mode it is a plain batch norm with
/// the running statistics and no communication. In a one-process group it computes what <c>BatchNorm2d</c> does.
/// </summary>
/// <remarks>
/// Sums are taken in float64, so E[x²] − E[x]² loses nothing a float32 activation holds. The weight and bias
/// gradients are each rank's own (as in PyTorch): the gradient all-reduce that follows backward averages them with
/// every other parameter's.
/// </remarks>
public sealed class SyncBatchNorm : nn.Module<Tensor, Tensor>
{
    readonly ProcessGroup group;

    /// <summary>A synchronised batch norm over <paramref name="numFeatures"/> channels (dimension 1 of the input).</summary>
    public SyncBatchNorm(long numFeatures, ProcessGroup group, double eps = 1e-5, double? momentum = 0.1, bool affine = true, bool trackRunningStats = true)
        : base(nameof(SyncBatchNorm))
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(numFeatures);
        (this.group, num_features, this.eps, this.momentum) = (group, numFeatures, eps, momentum);
        if (affine)
        {
            register_parameter("weight", new Parameter(ones(numFeatures)));
            register_parameter("bias", new Parameter(zeros(numFeatures)));
        }
        if (trackRunningStats)
        {
            register_buffer("running_mean", zeros(numFeatures));
            register_buffer("running_var", ones(numFeatures));
            register_buffer("num_batches_tracked", tensor(0L));
        }
    }

    // Takes over a BatchNorm2d's settings and copies of its tensors, registered under the same names in the same
    // order, so that state_dict keys and their order do not change. Copies, not the same objects: the replaced
    // module's finaliser disposes the tensors it holds.
    SyncBatchNorm(BatchNorm2d bn, ProcessGroup group) : base(nameof(SyncBatchNorm))
    {
        (this.group, num_features, eps, momentum) = (group, bn.num_features, bn.eps, bn.momentum);
        using (no_grad())
        {
            foreach (var (name, p) in bn.named_parameters(recurse: false))
                register_parameter(name, new Parameter(p.detach().clone(), p.requires_grad));
            foreach (var (name, b) in bn.named_buffers(recurse: false))
                register_buffer(name, b.detach().clone());
        }
        train(bn.training);
    }

    /// <summary>Number of channels C.</summary>
    public long num_features { get; }

    /// <summary>Added to the variance before the square root.</summary>
    public double eps { get; set; }

    /// <summary>Weight of the new batch in the running statistics; null: cumulative average.</summary>
    public double? momentum { get; set; }

    /// <summary>The group whose ranks share statistics.</summary>
    public ProcessGroup Group => group;

    /// <summary>Normalises <paramref name="input"/> [N, C, …].</summary>
    public override Tensor forward(Tensor input)
    {
        if (input.ndim < 2 || input.shape[1] != num_features)
            throw new ArgumentException($"SyncBatchNorm over {num_features} channels got input [{string.Join(", ", input.shape)}]; expected [N, {num_features}, ...]");
        var (weight, bias) = (Parameter("weight"), Parameter("bias"));
        var (runningMean, runningVar) = (Buffer("running_mean"), Buffer("running_var"));
        if (!training && runningMean is not null && runningVar is not null)
            return nn.functional.batch_norm(input, runningMean, runningVar, weight, bias, false, momentum ?? 0.0, eps);
        using var w = weight is null ? ones(num_features, input.dtype, input.device) : null;
        using var b = bias is null ? zeros(num_features, input.dtype, input.device) : null;
        return SyncBatchNormFunction.apply(input, weight ?? w!, bias ?? b!, this);
    }

    Tensor? Parameter(string name) => named_parameters(recurse: false).FirstOrDefault(p => p.name == name).parameter;
    Tensor? Buffer(string name) => named_buffers(recurse: false).FirstOrDefault(p => p.name == name).buffer;

    // The running statistics move towards the global batch's mean and unbiased variance (no host round trip).
    internal void UpdateRunningStatistics(Tensor mean, Tensor variance, Tensor count)
    {
        var (runningMean, runningVar, tracked) = (Buffer("running_mean"), Buffer("running_var"), Buffer("num_batches_tracked"));
        if (!training || runningMean is null || runningVar is null) return;
        tracked?.add_(1);
        var factor = momentum ?? (tracked is null ? 0.0 : 1.0 / tracked.ToInt64());
        var unbiased = variance * count / (count - 1).clamp_min(1);
        runningMean.mul_(1 - factor).add_(mean.to(runningMean.dtype), alpha: factor);
        runningVar.mul_(1 - factor).add_(unbiased.to(runningVar.dtype), alpha: factor);
    }

    /// <summary>
    /// Replaces every <c>BatchNorm2d</c> inside <paramref name="module"/> by a <see cref="SyncBatchNorm"/> over
    /// <paramref name="group"/> holding the same weights and statistics under the same state_dict names (PyTorch's
    /// <c>convert_sync_batchnorm</c>). Call it after moving the model to its device and before creating the optimizer.
    /// </summary>
    /// <returns>The number of modules replaced.</returns>
    /// <exception cref="NotSupportedException">A field holds a batch norm under a type a SyncBatchNorm cannot take
    /// (declared <c>BatchNorm2d</c>, which is sealed); the message names the class and field.</exception>
    public static int convert_sync_batchnorm(nn.Module module, ProcessGroup group)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(group);
        int replaced = 0;
        foreach (var (name, child) in module.named_children().ToList())
        {
            if (child is BatchNorm2d bn)
            {
                var sync = new SyncBatchNorm(bn, group);
                Replace(module, name, bn, sync);
                replaced++;
            }
            else replaced += convert_sync_batchnorm(child, group);
        }
        return replaced;
    }

    static readonly FieldInfo Submodules = typeof(nn.Module).GetField("_internal_submodules", BindingFlags.Instance | BindingFlags.NonPublic)
        ?? throw new MissingFieldException("TorchSharp's Module has no _internal_submodules field: this TorchSharp version is not supported by convert_sync_batchnorm");

    // TorchSharp keeps a child in the module's registry (state_dict, children, to()) and, separately, in the field
    // or container list that forward() uses: both must point at the replacement.
    static void Replace(nn.Module parent, string name, nn.Module old, nn.Module replacement)
    {
        var registry = (TorchSharp.Utils.OrderedDict<string, nn.Module>)Submodules.GetValue(parent)!;
        registry[name] = replacement;   // OrderedDict's setter keeps the key's position
        for (var type = parent.GetType(); type is not null && type != typeof(object); type = type.BaseType)
            foreach (var field in type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
            {
                var value = field.GetValue(parent);
                if (ReferenceEquals(value, old))
                {
                    if (!field.FieldType.IsInstanceOfType(replacement))
                        throw new NotSupportedException($"{parent.GetType().Name}.{field.Name} is declared {field.FieldType.Name}, which a SyncBatchNorm cannot replace; declare it as Module<Tensor, Tensor>");
                    field.SetValue(parent, replacement);
                }
                else if (value is IList list and not Array)
                {
                    for (var i = 0; i < list.Count; i++)
                        if (ReferenceEquals(list[i], old)) list[i] = replacement;
                }
            }
    }
}

/// <summary>The autograd node of <see cref="SyncBatchNorm"/> in training: inputs (input, weight, bias, module).</summary>
sealed class SyncBatchNormFunction : autograd.SingleTensorFunction<SyncBatchNormFunction>
{
    public override string Name => nameof(SyncBatchNorm);

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var (input, weight, bias, module) = ((Tensor)vars[0], (Tensor)vars[1], (Tensor)vars[2], (SyncBatchNorm)vars[3]);
        using var _ = no_grad();
        var dims = ReducedDims(input);
        var shape = ChannelShape(input);
        long channels = input.shape[1];
        var localCount = tensor(new[] { (double)(input.numel() / channels) }, ScalarType.Float64, input.device);
        var stats = cat([input.sum(dims, false, ScalarType.Float64), input.square().sum(dims, false, ScalarType.Float64), localCount]);
        module.Group.AllReduce(stats);
        var count = stats.narrow(0, 2 * channels, 1);
        var mean = stats.narrow(0, 0, channels) / count;
        var variance = (stats.narrow(0, channels, channels) / count - mean.square()).clamp_min(0);
        var invstd = (variance + module.eps).rsqrt();
        module.UpdateRunningStatistics(mean, variance, count);

        var meanT = mean.to(input.dtype).view(shape);
        var invstdT = invstd.to(input.dtype).view(shape);
        ctx.save_for_backward([input, weight, meanT, invstdT, count]);
        ctx.save_data("group", module.Group);
        return (input - meanT) * invstdT * weight.view(shape) + bias.view(shape);
    }

    // dL/dx = w·invstd·(g − Σg/N − (x−μ)·invstd²·Σg(x−μ)/N), with both sums over the global batch (all-reduced).
    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
    {
        var saved = ctx.get_saved_variables();
        var (input, weight, meanT, invstdT, count) = (saved[0], saved[1], saved[2], saved[3], saved[4]);
        var group = (ProcessGroup)ctx.get_data("group");
        var dims = ReducedDims(input);
        var shape = ChannelShape(input);
        long channels = input.shape[1];
        var xmu = input - meanT;
        var sumDy = gradOutput.sum(dims, false, ScalarType.Float64);
        var sumDyXmu = (gradOutput * xmu).sum(dims, false, ScalarType.Float64);
        var gradWeight = (sumDyXmu * invstdT.flatten().to(ScalarType.Float64)).to(weight.dtype);
        var gradBias = sumDy.to(weight.dtype);
        var sums = cat([sumDy, sumDyXmu]);
        group.AllReduce(sums);
        var meanDy = (sums.narrow(0, 0, channels) / count).to(input.dtype).view(shape);
        var meanDyXmu = (sums.narrow(0, channels, channels) / count).to(input.dtype).view(shape);
        var gradInput = (gradOutput - meanDy - xmu * invstdT.square() * meanDyXmu) * invstdT * weight.view(shape);
        return [gradInput, gradWeight, gradBias, null!];
    }

    static long[] ReducedDims(Tensor input) => [0, .. Enumerable.Range(2, (int)input.ndim - 2).Select(d => (long)d)];

    static long[] ChannelShape(Tensor input) => [1, input.shape[1], .. Enumerable.Repeat(1L, (int)input.ndim - 2)];
}
