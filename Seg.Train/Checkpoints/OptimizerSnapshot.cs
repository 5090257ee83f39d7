using System.Globalization;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Seg.Train.Checkpoints;

/// <summary>
/// An optimizer's state as a checkpoint stores it, in PyTorch's terms: per parameter group its hyper-parameters,
/// per parameter its buffers (tensors named <c>state.{i}.momentum_buffer</c>, <c>state.{i}.exp_avg</c>, ...) and,
/// for AdamW, its step count. Parameters are numbered across groups in the optimizer's order.
/// </summary>
/// <param name="Type">The TorchSharp optimizer class: <c>SGD</c> or <c>AdamW</c>.</param>
/// <param name="ParamGroups">One entry per parameter group.</param>
/// <param name="Steps">AdamW: the step count of each parameter; SGD: null.</param>
internal sealed record OptimizerMeta(string Type, IReadOnlyList<ParamGroupMeta> ParamGroups, IReadOnlyList<long>? Steps);

/// <summary>One parameter group: its size and hyper-parameters (SGD: momentum, dampening, nesterov; AdamW: betas, eps, amsgrad).</summary>
internal sealed record ParamGroupMeta(int Params, double LearningRate, double InitialLearningRate, double WeightDecay, bool Maximize,
    double? Momentum = null, double? Dampening = null, bool? Nesterov = null,
    double? Beta1 = null, double? Beta2 = null, double? Eps = null, bool? Amsgrad = null);

/// <summary>
/// Captures the state of Seg's optimizers (SGD and AdamW), checks a stored one against a live optimizer, and
/// restores it. Restoring sets the state objects' fields directly, so nothing unchecked reaches libtorch.
/// </summary>
internal static class OptimizerSnapshot
{
    const string Sgd = nameof(SGD), AdamW = nameof(TorchSharp.Modules.AdamW);
    static readonly string[] SgdBuffers = ["momentum_buffer"];
    static readonly string[] AdamWBuffers = ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"];

    /// <summary>The description and the named buffers of <paramref name="optimizer"/>.</summary>
    /// <exception cref="NotSupportedException">An optimizer other than SGD and AdamW.</exception>
    public static (OptimizerMeta Meta, List<(string Name, Tensor Tensor)> Tensors) Capture(optim.Optimizer optimizer)
    {
        var (helper, groups) = Live(optimizer);
        var sd = helper.state_dict();
        var tensors = new List<(string, Tensor)>();
        var metas = new List<ParamGroupMeta>();
        for (var g = 0; g < groups.Count; g++)
        {
            var count = groups[g].Parameters.Count();
            metas.Add(sd.Options[g] switch
            {
                SGD.Options o => new ParamGroupMeta(count, o.LearningRate!.Value, o.InitialLearningRate, o.weight_decay!.Value, o.maximize!.Value,
                    Momentum: o.momentum!.Value, Dampening: o.dampening!.Value, Nesterov: o.nesterov!.Value),
                TorchSharp.Modules.AdamW.Options o => new ParamGroupMeta(count, o.LearningRate!.Value, o.InitialLearningRate, o.weight_decay!.Value, o.maximize!.Value,
                    Beta1: o.beta1!.Value, Beta2: o.beta2!.Value, Eps: o.eps!.Value, Amsgrad: o.amsgrad!.Value),
                var o => throw new NotSupportedException($"cannot save options of type {o.GetType().Name}"),
            });
        }
        List<long>? steps = helper is TorchSharp.Modules.AdamW ? [] : null;
        for (var i = 0; i < sd.State.Count; i++)
        {
            switch (sd.State[i])
            {
                case SGD.State s:
                    Add(i, "momentum_buffer", s.momentum_buffer);
                    break;
                case TorchSharp.Modules.AdamW.State s:
                    steps!.Add(s.step);
                    Add(i, "exp_avg", s.exp_avg);
                    Add(i, "exp_avg_sq", s.exp_avg_sq);
                    Add(i, "max_exp_avg_sq", s.max_exp_avg_sq);
                    break;
            }
        }
        return (new OptimizerMeta(TypeName(helper), metas, steps), tensors);

        void Add(int i, string field, Tensor? t)
        {
            if (t is not null) tensors.Add(($"state.{i}.{field}", t));
        }
    }

    /// <summary>
    /// Throws (through <paramref name="bad"/>) unless the stored state fits <paramref name="optimizer"/> exactly: same
    /// type, group sizes, plausible hyper-parameters, and one buffer of each parameter's dtype and shape where the
    /// algorithm keeps one.
    /// </summary>
    public static void Check(OptimizerMeta meta, IReadOnlyList<TensorRecord> tensors, optim.Optimizer optimizer, Func<string, Exception> bad)
    {
        var (helper, groups) = Live(optimizer);
        var type = TypeName(helper);
        if (meta.Type != type) throw bad($"it holds {meta.Type} optimizer state; this run's optimizer is {type}");
        if (meta.ParamGroups.Count != groups.Count)
            throw bad($"its optimizer state has {meta.ParamGroups.Count} parameter group(s); this optimizer has {groups.Count}");
        var parameters = new List<Parameter>();
        for (var g = 0; g < groups.Count; g++)
        {
            var live = groups[g].Parameters.ToList();
            var stored = meta.ParamGroups[g];
            if (stored.Params != live.Count)
                throw bad($"optimizer parameter group {g} has {stored.Params} parameters in the checkpoint and {live.Count} in this run");
            if (HyperProblem(stored, type) is { } problem) throw bad($"optimizer parameter group {g}: {problem}");
            parameters.AddRange(live);
        }
        if (type == AdamW && (meta.Steps is null || meta.Steps.Count != parameters.Count || meta.Steps.Any(s => s < 0)))
            throw bad($"its AdamW state needs one step count of at least 0 per parameter ({parameters.Count})");

        var fields = type == Sgd ? SgdBuffers : AdamWBuffers;
        var present = new HashSet<(int, string)>();
        foreach (var record in tensors)
        {
            var (index, field) = ParseName(record.Name, fields, parameters.Count)
                ?? throw bad($"optimizer tensor '{record.Name}' is not state.<i>.<{string.Join("|", fields)}> for i < {parameters.Count}");
            var p = parameters[index];
            if (record.DType != p.dtype || !record.Shape.SequenceEqual(p.shape))
                throw bad($"optimizer tensor {record} does not match parameter {index}, {CheckpointFormat.Describe(p.dtype, p.shape)}");
            present.Add((index, field));
        }
        if (type == AdamW)
        {
            var index = 0;
            foreach (var group in meta.ParamGroups)
                for (var k = 0; k < group.Params; k++, index++)
                    foreach (var field in AdamWBuffers)
                        if (present.Contains((index, field)) != (field != "max_exp_avg_sq" || group.Amsgrad == true))
                            throw bad($"optimizer tensor 'state.{index}.{field}' is {(present.Contains((index, field)) ? "present, but not used" : "missing")}");
        }
    }

    /// <summary>Sets <paramref name="optimizer"/>'s state from a checked snapshot; <paramref name="read"/> yields host tensors.</summary>
    public static void Restore(OptimizerMeta meta, IReadOnlyList<TensorRecord> tensors, optim.Optimizer optimizer, Func<TensorRecord, Tensor> read)
    {
        var (helper, groups) = Live(optimizer);
        var sd = helper.state_dict();
        for (var g = 0; g < groups.Count; g++)
        {
            var m = meta.ParamGroups[g];
            var options = sd.Options[g];
            options.LearningRate = m.LearningRate;
            options.InitialLearningRate = m.InitialLearningRate;
            switch (options)
            {
                case SGD.Options o:
                    (o.momentum, o.dampening, o.nesterov, o.weight_decay, o.maximize) = (m.Momentum, m.Dampening, m.Nesterov, m.WeightDecay, m.Maximize);
                    break;
                case TorchSharp.Modules.AdamW.Options o:
                    (o.beta1, o.beta2, o.eps, o.amsgrad, o.weight_decay, o.maximize) = (m.Beta1, m.Beta2, m.Eps, m.Amsgrad, m.WeightDecay, m.Maximize);
                    break;
            }
        }
        var parameters = groups.SelectMany(g => g.Parameters).ToList();
        var byName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
        using var noGrad = no_grad();
        for (var i = 0; i < sd.State.Count; i++)
        {
            switch (sd.State[i])
            {
                case SGD.State s:
                    s.momentum_buffer = Fill(s.momentum_buffer, i, "momentum_buffer");
                    break;
                case TorchSharp.Modules.AdamW.State s:
                    s.step = meta.Steps![i];
                    s.exp_avg = Fill(s.exp_avg, i, "exp_avg")!;
                    s.exp_avg_sq = Fill(s.exp_avg_sq, i, "exp_avg_sq")!;
                    s.max_exp_avg_sq = Fill(s.max_exp_avg_sq, i, "max_exp_avg_sq");
                    break;
            }
        }

        // The stored buffer copied into the live one (made like its parameter when absent), or null when none is stored.
        Tensor? Fill(Tensor? current, int i, string field)
        {
            if (!byName.TryGetValue($"state.{i}.{field}", out var record))
            {
                current?.Dispose();
                return null;
            }
            current ??= zeros_like(parameters[i]).DetachFromDisposeScope();
            using var host = read(record);
            current.copy_(host);
            return current;
        }
    }

    static (OptimizerHelper Helper, List<ParamGroup> Groups) Live(optim.Optimizer optimizer) => optimizer switch
    {
        SGD or TorchSharp.Modules.AdamW => ((OptimizerHelper)optimizer, optimizer.ParamGroups.Cast<ParamGroup>().ToList()),
        _ => throw new NotSupportedException($"checkpoints hold the state of SGD and AdamW, not of {optimizer.GetType().Name}"),
    };

    // Seg's flat optimizers are an SGD and an AdamW with other step code: their state is stored as those types',
    // so that a checkpoint resumes with either.
    static string TypeName(OptimizerHelper helper) => helper is TorchSharp.Modules.AdamW ? AdamW : Sgd;

    static string? HyperProblem(ParamGroupMeta m, string type)
    {
        static bool Ok(double? v, double min = 0, double max = double.MaxValue) => v is { } x && double.IsFinite(x) && x >= min && x <= max;
        if (!Ok(m.LearningRate) || !Ok(m.InitialLearningRate)) return $"learning rate {m.LearningRate} / initial {m.InitialLearningRate} is not a finite non-negative number";
        if (!Ok(m.WeightDecay)) return $"weight decay {m.WeightDecay} is not a finite non-negative number";
        return type == Sgd
            ? !Ok(m.Momentum) || !Ok(m.Dampening, double.MinValue) || m.Nesterov is null ? "SGD needs finite momentum (>= 0), dampening and nesterov" : null
            : !Ok(m.Beta1, 0, 1) || !Ok(m.Beta2, 0, 1) || m.Beta1 >= 1 || m.Beta2 >= 1 || !Ok(m.Eps) || m.Amsgrad is null
                ? "AdamW needs betas in [0, 1), a finite eps >= 0 and amsgrad" : null;
    }

    static (int Index, string Field)? ParseName(string name, string[] fields, int count)
    {
        var parts = name.Split('.');
        return parts is ["state", var i, var field]
               && int.TryParse(i, NumberStyles.None, CultureInfo.InvariantCulture, out var index) && index < count
               && i == index.ToString(CultureInfo.InvariantCulture) && fields.Contains(field)
            ? (index, field) : null;
    }
}
