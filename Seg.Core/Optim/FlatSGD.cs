using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Seg.Core.Optim;

/// <summary>
/// TorchSharp's <see cref="SGD"/> with momentum, computed over <see cref="FlatParameters"/>: a step is at most five
/// tensor operations whatever the number of parameters. The arithmetic is TorchSharp's, operation for operation:
/// <c>d ← g + λθ; b ← d</c> on the first step, then <c>b ← μb + (1 − τ)d</c>; <c>d ← d + μb</c> (Nesterov) or
/// <c>d ← b</c>; <c>θ ← θ − lr·d</c>.
/// </summary>
/// <remarks>
/// It is an <see cref="SGD"/>: learning-rate schedules and checkpoints see its group and its per-parameter
/// <c>momentum_buffer</c> (views of one flat buffer) where TorchSharp keeps them. With <c>maximize</c>, or momentum
/// buffers present for some parameters only, a step falls back to TorchSharp's loop.
/// </remarks>
public sealed class FlatSGD : SGD, IFlatOptimizer
{
    readonly Tensor momentumBuffer, work;
    readonly Tensor[] momentumViews;

    /// <inheritdoc/>
    public FlatParameters Flat { get; }

    /// <summary>SGD over <paramref name="parameters"/> (moved into one buffer), with TorchSharp's arguments.</summary>
    /// <exception cref="ArgumentException">A hyper-parameter out of range, or parameters that cannot share one buffer
    /// (<see cref="FlatParameters.Problem"/>).</exception>
    public FlatSGD(IEnumerable<Parameter> parameters, double lr, double momentum = 0, double dampening = 0,
        double weight_decay = 0, bool nesterov = false)
        : this(new FlatParameters(parameters), lr, momentum, dampening, weight_decay, nesterov) { }

    FlatSGD(FlatParameters flat, double lr, double momentum, double dampening, double weight_decay, bool nesterov)
        : base(flat.Parameters, lr, momentum, dampening, weight_decay, nesterov)
    {
        Flat = flat;
        momentumBuffer = zeros_like(flat.Values).DetachFromDisposeScope();
        work = empty_like(flat.Values).DetachFromDisposeScope();
        momentumViews = Enumerable.Range(0, flat.Parameters.Count).Select(i => flat.View(momentumBuffer, i).DetachFromDisposeScope()).ToArray();
    }

    /// <summary>Zeroes all gradients with one operation.</summary>
    public override void zero_grad() => Flat.ZeroGrad();

    /// <inheritdoc/>
    public override Tensor step(Func<Tensor>? closure = null)
    {
        Flat.Reattach();
        var o = ((ParamGroup)ParamGroups.Single()).Options;
        if (o.maximize == true || AdoptState() is not { } started) return base.step(closure!);
        return _step<ParamGroup>(_ =>
        {
            var (lr, momentum, dampening, decay, nesterov) = (o.LearningRate!.Value, o.momentum!.Value, o.dampening!.Value, o.weight_decay!.Value, o.nesterov!.Value);
            var (values, direction) = (Flat.Values, Flat.Gradients);
            if (decay != 0) direction = work.copy_(direction).add_(values, alpha: decay);
            if (momentum != 0)
            {
                if (started) momentumBuffer.mul_(momentum).add_(direction, alpha: 1 - dampening);
                else
                {
                    momentumBuffer.copy_(direction);
                    for (var i = 0; i < momentumViews.Length; i++) StateOf(i).momentum_buffer = momentumViews[i];
                }
                if (!nesterov) direction = momentumBuffer;
                else
                {
                    if (!ReferenceEquals(direction, work)) direction = work.copy_(direction);
                    direction.add_(momentumBuffer, alpha: momentum);
                }
            }
            values.add_(direction, alpha: -lr);
        }, closure!);
    }

    SGD.State StateOf(int i) => (SGD.State)_state[Flat.Parameters[i].Handle];

    // Whether the momentum buffers exist (they appear on the first step), now as the flat buffer's views; null when
    // some parameters have one and others not, which only TorchSharp's loop can continue.
    bool? AdoptState()
    {
        var present = Enumerable.Range(0, momentumViews.Length).Count(i => StateOf(i).momentum_buffer is not null);
        if (present == 0) return false;
        if (present != momentumViews.Length) return null;
        for (var i = 0; i < momentumViews.Length; i++)
            StateOf(i).momentum_buffer = FlatParameters.Adopt(StateOf(i).momentum_buffer, momentumViews[i]);
        return true;
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        // Refused parameters throw before the base constructor runs; the finalizer must not touch its state then.
        if (Flat is null) return;
        // The base disposes the momentum views it holds; the buffers and the parameters' views go here.
        base.Dispose(disposing);
        if (!disposing) return;
        momentumBuffer.Dispose();
        work.Dispose();
        Flat.Dispose();
    }
}
