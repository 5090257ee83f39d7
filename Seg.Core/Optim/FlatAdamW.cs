using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Seg.Core.Optim;

/// <summary>
/// TorchSharp's <see cref="AdamW"/> (Loshchilov and Hutter, "Decoupled Weight Decay Regularization", ICLR 2019),
/// computed over <see cref="FlatParameters"/>: one step is nine tensor operations whatever the number of
/// parameters. The arithmetic is TorchSharp's, operation for operation:
/// <c>θ ← θ·(1 − lr·λ); m ← β₁m + (1 − β₁)g; v ← β₂v + (1 − β₂)g²; θ ← θ − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)</c>.
/// </summary>
/// <remarks>
/// It is an <see cref="AdamW"/>: its parameter group, learning rate and per-parameter state (step, <c>exp_avg</c>,
/// <c>exp_avg_sq</c>, here views of flat buffers) are where TorchSharp keeps them, so learning-rate schedules and
/// checkpoints treat both alike. With <c>amsgrad</c>, <c>maximize</c>, or step counts that differ between parameters
/// (state restored from a run where some parameters had no gradient) a step falls back to TorchSharp's loop.
/// </remarks>
public sealed class FlatAdamW : AdamW, IFlatOptimizer
{
    readonly Tensor expAvg, expAvgSq, denominator;
    readonly Tensor[] expAvgViews, expAvgSqViews;

    /// <inheritdoc/>
    public FlatParameters Flat { get; }

    /// <summary>AdamW over <paramref name="parameters"/> (moved into one buffer), with TorchSharp's arguments.</summary>
    /// <exception cref="ArgumentException">A hyper-parameter out of range, or parameters that cannot share one buffer
    /// (<see cref="FlatParameters.Problem"/>).</exception>
    public FlatAdamW(IEnumerable<Parameter> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, double weight_decay = 0)
        : this(new FlatParameters(parameters), lr, beta1, beta2, eps, weight_decay) { }

    FlatAdamW(FlatParameters flat, double lr, double beta1, double beta2, double eps, double weight_decay)
        : base(flat.Parameters, lr, beta1, beta2, eps, weight_decay)
    {
        Flat = flat;
        expAvg = zeros_like(flat.Values).DetachFromDisposeScope();
        expAvgSq = zeros_like(flat.Values).DetachFromDisposeScope();
        denominator = empty_like(flat.Values).DetachFromDisposeScope();
        var n = flat.Parameters.Count;
        (expAvgViews, expAvgSqViews) = (new Tensor[n], new Tensor[n]);
        for (var i = 0; i < n; i++)
        {
            var state = StateOf(i);
            state.exp_avg.Dispose();
            state.exp_avg_sq.Dispose();
            state.exp_avg = expAvgViews[i] = flat.View(expAvg, i).DetachFromDisposeScope();
            state.exp_avg_sq = expAvgSqViews[i] = flat.View(expAvgSq, i).DetachFromDisposeScope();
        }
    }

    /// <summary>Zeroes all gradients with one operation.</summary>
    public override void zero_grad() => Flat.ZeroGrad();

    /// <inheritdoc/>
    public override Tensor step(Func<Tensor>? closure = null)
    {
        Flat.Reattach();
        var group = (ParamGroup)ParamGroups.Single();
        var o = group.Options;
        if (o.amsgrad == true || o.maximize == true || !AdoptState(out var steps)) return base.step(closure!);
        return _step<ParamGroup>(_ =>
        {
            var (lr, beta1, beta2, eps, decay) = (o.LearningRate!.Value, o.beta1!.Value, o.beta2!.Value, o.eps!.Value, o.weight_decay!.Value);
            var t = steps + 1;
            for (var i = 0; i < expAvgViews.Length; i++) StateOf(i).step = t;
            var (correction1, correction2) = (1 - Math.Pow(beta1, t), 1 - Math.Pow(beta2, t));
            var (values, grad) = (Flat.Values, Flat.Gradients);
            values.mul_(1 - lr * decay);
            expAvg.mul_(beta1).add_(grad, alpha: 1 - beta1);
            expAvgSq.mul_(beta2).addcmul_(grad, grad, value: 1 - beta2);
            denominator.copy_(expAvgSq).sqrt_().div_(Math.Sqrt(correction2)).add_(eps);
            values.addcdiv_(expAvg, denominator, value: -(lr / correction1));
        }, closure!);
    }

    AdamW.State StateOf(int i) => (AdamW.State)_state[Flat.Parameters[i].Handle];

    // The per-parameter state must be the flat buffers' views with one step count. Something that replaced a
    // tensor (TorchSharp's load_state_dict) is copied back into the buffer; differing step counts cannot be flat.
    bool AdoptState(out long steps)
    {
        steps = StateOf(0).step;
        for (var i = 0; i < expAvgViews.Length; i++)
        {
            var state = StateOf(i);
            if (state.step != steps) return false;
            state.exp_avg = FlatParameters.Adopt(state.exp_avg, expAvgViews[i]);
            state.exp_avg_sq = FlatParameters.Adopt(state.exp_avg_sq, expAvgSqViews[i]);
        }
        return true;
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        // Refused parameters throw before the base constructor runs; the finalizer must not touch its state then.
        if (Flat is null) return;
        // The base disposes the state's tensors, which are the views; the buffers and the parameters' views go here.
        base.Dispose(disposing);
        if (!disposing) return;
        expAvg.Dispose();
        expAvgSq.Dispose();
        denominator.Dispose();
        Flat.Dispose();
    }
}
