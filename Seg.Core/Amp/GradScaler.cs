using System.Runtime.CompilerServices;
using Seg.Core.Optim;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Seg.Core.Amp;

/// <summary>
/// Loss scaling for float16 training, with the semantics and defaults of PyTorch's <c>torch.amp.GradScaler</c>.
/// float16 gradients of small magnitude underflow to zero; multiplying the loss by a large scale before
/// <c>backward()</c> keeps them representable, and the gradients are divided by it again before the step. A step
/// whose gradients hold an inf or NaN (the scale was too large) is skipped and the scale shrinks by
/// <see cref="BackoffFactor"/>; after <see cref="GrowthInterval"/> clean steps in a row it grows by
/// <see cref="GrowthFactor"/>. bfloat16 has float32's range and needs none of this.
/// </summary>
/// <remarks>
/// A step: <c>scaler.Scale(loss).backward(); scaler.Unscale(optimizer)</c> (only to clip gradients first)<c>;
/// scaler.Step(optimizer); scaler.Update();</c>. The scale and the growth counter live on the host, as float32 and
/// an integer, so <see cref="Step"/> reads one value from the device per step (whether any gradient was not
/// finite), as PyTorch's does.
/// </remarks>
public sealed class GradScaler
{
    enum Stage { Ready, Unscaled, Stepped }

    sealed class OptimizerState
    {
        public Stage Stage = Stage.Ready;
        public Tensor? AllFinite;   // a bool scalar on the gradients' device, set by Unscale
        public bool? FoundInf;      // read from AllFinite once
    }

    readonly ConditionalWeakTable<optim.Optimizer, OptimizerState> perOptimizer = new();
    readonly List<OptimizerState> touched = [];
    float scale;
    int growthTracker;

    /// <summary>A scaler with PyTorch's defaults: scale 2^16, growth ×2 after 2000 clean steps, backoff ×0.5.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A scale that is not positive and finite, a growth factor not
    /// above 1, a backoff factor not in (0, 1), or a growth interval below 1.</exception>
    public GradScaler(float initScale = 65536f, float growthFactor = 2f, float backoffFactor = 0.5f, int growthInterval = 2000)
    {
        if (!(initScale > 0) || !float.IsFinite(initScale))
            throw new ArgumentOutOfRangeException(nameof(initScale), initScale, "the initial scale must be positive and finite.");
        if (!(growthFactor > 1) || !float.IsFinite(growthFactor))
            throw new ArgumentOutOfRangeException(nameof(growthFactor), growthFactor, "the growth factor must be finite and above 1.");
        if (!(backoffFactor is > 0 and < 1))
            throw new ArgumentOutOfRangeException(nameof(backoffFactor), backoffFactor, "the backoff factor must lie in (0, 1).");
        if (growthInterval < 1)
            throw new ArgumentOutOfRangeException(nameof(growthInterval), growthInterval, "the growth interval must be at least 1.");
        scale = initScale;
        GrowthFactor = growthFactor;
        BackoffFactor = backoffFactor;
        GrowthInterval = growthInterval;
    }

    /// <summary>The scale the next <see cref="Scale"/> multiplies by.</summary>
    public float CurrentScale => scale;

    /// <summary>The factor the scale grows by after <see cref="GrowthInterval"/> steps without inf or NaN.</summary>
    public float GrowthFactor { get; }

    /// <summary>The factor the scale shrinks by after a step with an inf or NaN gradient.</summary>
    public float BackoffFactor { get; }

    /// <summary>Clean steps in a row before the scale grows.</summary>
    public int GrowthInterval { get; }

    /// <summary><paramref name="loss"/> times <see cref="CurrentScale"/>: call <c>backward()</c> on this.</summary>
    public Tensor Scale(Tensor loss) => loss * scale;

    /// <summary>
    /// Divides the gradients of <paramref name="optimizer"/>'s parameters by the scale, in place, and notes
    /// whether any is inf or NaN (on the device; nothing is read here). Call it before clipping or inspecting
    /// gradients; <see cref="Step"/> calls it when you have not.
    /// </summary>
    /// <exception cref="InvalidOperationException">Called twice for one optimizer before <see cref="Update()"/>, or after <see cref="Step"/>.</exception>
    public void Unscale(optim.Optimizer optimizer)
    {
        var state = perOptimizer.GetValue(optimizer, _ => new OptimizerState());
        if (state.Stage == Stage.Unscaled)
            throw new InvalidOperationException("Unscale has already been called on this optimizer since the last Update.");
        if (state.Stage == Stage.Stepped)
            throw new InvalidOperationException("Unscale is being called after Step; call Update first.");
        // As PyTorch: the reciprocal in double, rounded once to float32; a gradient's finiteness is judged on its
        // value before the multiplication (a finite value may overflow when the scale is below 1).
        var inverse = (float)(1.0 / scale);
        Tensor? allFinite = null;
        using (no_grad())
        {
            if (optimizer is IFlatOptimizer { Flat: var flat })
            {
                flat.Reattach();
                allFinite = flat.Gradients.isfinite().all();
                flat.Gradients.mul_(inverse);
            }
            else foreach (var parameter in Parameters(optimizer))
            {
                using var grad = parameter.grad;
                if (grad is null) continue;
                using var finite = grad.isfinite().all();
                if (allFinite is null) allFinite = finite.clone();
                else allFinite.logical_and_(finite);
                grad.mul_(inverse);
            }
        }
        state.AllFinite?.Dispose();
        state.AllFinite = allFinite?.DetachFromDisposeScope();
        state.FoundInf = null;
        state.Stage = Stage.Unscaled;
        touched.Add(state);
    }

    /// <summary>
    /// Unscales (unless <see cref="Unscale"/> was called this step), then runs <c>optimizer.step()</c> only if every
    /// gradient is finite. Returns whether it stepped. This is the step's one read from the device.
    /// </summary>
    /// <exception cref="InvalidOperationException">Called twice for one optimizer before <see cref="Update()"/>.</exception>
    public bool Step(optim.Optimizer optimizer)
    {
        var state = perOptimizer.GetValue(optimizer, _ => new OptimizerState());
        if (state.Stage == Stage.Stepped)
            throw new InvalidOperationException("Step has already been called on this optimizer since the last Update.");
        if (state.Stage == Stage.Ready) Unscale(optimizer);
        var stepped = !FoundInf(state);
        if (stepped) optimizer.step();
        state.Stage = Stage.Stepped;
        return stepped;
    }

    /// <summary>
    /// Adjusts the scale for the next step, as PyTorch's <c>update()</c>: ×<see cref="BackoffFactor"/> when any
    /// optimizer saw an inf or NaN since the last update (and the growth counter restarts), otherwise the counter
    /// counts one more clean step, and at <see cref="GrowthInterval"/> the scale grows by
    /// <see cref="GrowthFactor"/> (unless that would overflow float32) and the counter restarts.
    /// </summary>
    /// <exception cref="InvalidOperationException">No optimizer was unscaled or stepped since the last update.</exception>
    public void Update()
    {
        if (touched.Count == 0)
            throw new InvalidOperationException("Update needs a Step (or Unscale) since the last Update: no inf check was recorded.");
        var foundInf = false;
        foreach (var state in touched) foundInf |= FoundInf(state);
        if (foundInf)
        {
            scale *= BackoffFactor;
            growthTracker = 0;
        }
        else if (growthTracker + 1 == GrowthInterval)
        {
            var grown = scale * GrowthFactor;
            if (float.IsFinite(grown)) scale = grown;
            growthTracker = 0;
        }
        else
        {
            growthTracker++;
        }
        ResetStages();
    }

    /// <summary>Sets the scale directly (PyTorch's <c>update(new_scale)</c>); the growth counter is kept.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A scale that is not positive and finite.</exception>
    public void Update(float newScale)
    {
        if (!(newScale > 0) || !float.IsFinite(newScale))
            throw new ArgumentOutOfRangeException(nameof(newScale), newScale, "the scale must be positive and finite.");
        scale = newScale;
        ResetStages();
    }

    /// <summary>What a checkpoint keeps of the scaler (PyTorch's <c>state_dict()</c>).</summary>
    public GradScalerState State => new(scale, GrowthFactor, BackoffFactor, GrowthInterval, growthTracker);

    /// <summary>Restores the scale and growth counter from a checkpoint.</summary>
    /// <exception cref="ArgumentException">A state whose scale is not positive and finite, whose counter is
    /// outside [0, interval), or whose factors or interval differ from this scaler's (a changed recipe).</exception>
    public void Restore(GradScalerState state)
    {
        if (!(state.Scale > 0) || !float.IsFinite(state.Scale))
            throw new ArgumentException($"grad scaler state: scale {state.Scale} is not positive and finite.", nameof(state));
        if (state.GrowthTracker < 0 || state.GrowthTracker >= state.GrowthInterval)
            throw new ArgumentException($"grad scaler state: growth tracker {state.GrowthTracker} lies outside [0, {state.GrowthInterval}).", nameof(state));
        if (state.GrowthFactor != GrowthFactor || state.BackoffFactor != BackoffFactor || state.GrowthInterval != GrowthInterval)
            throw new ArgumentException(
                $"grad scaler state: growth {state.GrowthFactor}, backoff {state.BackoffFactor}, interval {state.GrowthInterval} " +
                $"differ from this scaler's {GrowthFactor}, {BackoffFactor}, {GrowthInterval}.", nameof(state));
        scale = state.Scale;
        growthTracker = state.GrowthTracker;
        ResetStages();
    }

    static bool FoundInf(OptimizerState state) =>
        state.FoundInf ??= state.AllFinite is { } finite && !finite.item<bool>();

    void ResetStages()
    {
        foreach (var state in touched)
        {
            state.AllFinite?.Dispose();
            state.AllFinite = null;
            state.FoundInf = null;
            state.Stage = Stage.Ready;
        }
        touched.Clear();
    }

    static IEnumerable<Parameter> Parameters(optim.Optimizer optimizer) => optimizer.parameters();
}

/// <summary>A <see cref="GradScaler"/>'s state, as PyTorch's <c>GradScaler.state_dict()</c> holds it.</summary>
/// <param name="Scale">The current scale.</param>
/// <param name="GrowthFactor">Growth factor.</param>
/// <param name="BackoffFactor">Backoff factor.</param>
/// <param name="GrowthInterval">Clean steps before growth.</param>
/// <param name="GrowthTracker">Clean steps counted since the scale last changed.</param>
public sealed record GradScalerState(float Scale, float GrowthFactor, float BackoffFactor, int GrowthInterval, int GrowthTracker);
