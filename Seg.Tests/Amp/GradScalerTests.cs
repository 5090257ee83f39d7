using Seg.Core.Amp;
using Seg.Core.Optim;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Tests.Amp;

/// <summary>
/// The scaler against sequences worked out by hand from PyTorch's documented algorithm
/// (<c>torch.amp.GradScaler</c>: skip and ×backoff on inf/NaN, ×growth after growth_interval clean steps).
/// </summary>
public class GradScalerTests
{
    // One parameter p = [1, 2] with loss = g·p, so its gradient is g times the scale: the test chooses g.
    sealed class Case : IDisposable
    {
        public readonly TorchSharp.Modules.Parameter P = new(tensor(new float[] { 1, 2 }));
        public readonly optim.Optimizer Optimizer;
        public Case(bool flat = false) => Optimizer = flat ? new FlatSGD([P], 1.0) : optim.SGD([P], learningRate: 1.0);

        public void Backward(GradScaler scaler, float g0, float g1)
        {
            Optimizer.zero_grad();
            using var g = tensor(new[] { g0, g1 });
            using var loss = (P * g).sum();
            using var scaled = scaler.Scale(loss);
            scaled.backward();
        }

        public float[] Values => P.data<float>().ToArray();
        public float[] Grad { get { using var g = P.grad!; return g.data<float>().ToArray(); } }
        public void Dispose() { P.Dispose(); Optimizer.Dispose(); }
    }

    [Fact]
    public void Defaults_are_pytorchs()
    {
        var scaler = new GradScaler();
        Assert.Equal(65536f, scaler.CurrentScale);
        Assert.Equal(new GradScalerState(65536f, 2f, 0.5f, 2000, 0), scaler.State);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Scale_multiplies_and_step_divides_back(bool flat)
    {
        using var c = new Case(flat);
        var scaler = new GradScaler();
        using (var loss = tensor(0.75f))
        using (var scaled = scaler.Scale(loss))
            Assert.Equal(0.75f * 65536f, scaled.item<float>());
        c.Backward(scaler, 0.25f, -3f);
        Assert.Equal(new[] { 0.25f * 65536, -3f * 65536 }, c.Grad);
        Assert.True(scaler.Step(c.Optimizer));
        Assert.Equal(new[] { 0.25f, -3f }, c.Grad);
        Assert.Equal(new[] { 1 - 0.25f, 2 + 3f }, c.Values);
        scaler.Update();
        Assert.Equal(65536f, scaler.CurrentScale);
        Assert.Equal(1, scaler.State.GrowthTracker);
    }

    [Theory]
    [InlineData(float.PositiveInfinity, false)]
    [InlineData(float.NegativeInfinity, false)]
    [InlineData(float.NaN, false)]
    [InlineData(float.PositiveInfinity, true)]
    [InlineData(float.NaN, true)]
    public void A_step_with_a_non_finite_gradient_is_skipped_and_the_scale_backs_off(float bad, bool flat)
    {
        using var c = new Case(flat);
        var scaler = new GradScaler(initScale: 1024f, growthInterval: 3);
        c.Backward(scaler, 1f, 1f);
        Assert.True(scaler.Step(c.Optimizer));
        scaler.Update();                                       // tracker 1
        var before = c.Values;
        c.Backward(scaler, bad, 1f);
        Assert.False(scaler.Step(c.Optimizer));
        Assert.Equal(before, c.Values);                        // weights untouched
        scaler.Update();
        Assert.Equal(512f, scaler.CurrentScale);
        Assert.Equal(0, scaler.State.GrowthTracker);           // the clean-step count restarts
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Scale_follows_the_hand_worked_sequence(bool flat)
    {
        // growth ×2 every 3 clean steps, backoff ×0.5; 'x' marks a step with an inf gradient.
        //  step:     1    2    3    4    5    6    7    8    9    10
        //  grads:    ok   ok   ok   ok   x    ok   ok   ok   x    x
        //  scale:    8    8    16   16   8    8    8    16   8    4      (after each update)
        //  tracker:  1    2    0    1    0    1    2    0    0    0
        using var c = new Case(flat);
        var scaler = new GradScaler(initScale: 8f, growthFactor: 2f, backoffFactor: 0.5f, growthInterval: 3);
        var pattern = new[] { true, true, true, true, false, true, true, true, false, false };
        var scales = new List<float>();
        var trackers = new List<int>();
        var stepped = new List<bool>();
        foreach (var ok in pattern)
        {
            c.Backward(scaler, ok ? 0.5f : float.PositiveInfinity, 0.5f);
            stepped.Add(scaler.Step(c.Optimizer));
            scaler.Update();
            scales.Add(scaler.CurrentScale);
            trackers.Add(scaler.State.GrowthTracker);
        }
        Assert.Equal(pattern, stepped);
        Assert.Equal(new[] { 8f, 8f, 16f, 16f, 8f, 8f, 8f, 16f, 8f, 4f }, scales);
        Assert.Equal(new[] { 1, 2, 0, 1, 0, 1, 2, 0, 0, 0 }, trackers);
        // 7 clean SGD steps of lr 1 on a gradient of 0.5 each
        Assert.Equal(new[] { 1 - 7 * 0.5f, 2 - 7 * 0.5f }, c.Values);
    }

    [Fact]
    public void Growth_that_would_overflow_float32_keeps_the_scale()
    {
        using var c = new Case();
        var big = float.MaxValue / 1.5f;
        var scaler = new GradScaler(initScale: big, growthInterval: 1);
        c.Backward(scaler, 0f, 0f);
        Assert.True(scaler.Step(c.Optimizer));
        scaler.Update();
        Assert.Equal(big, scaler.CurrentScale);
        Assert.Equal(0, scaler.State.GrowthTracker);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Unscale_before_clipping_is_not_repeated_by_step(bool flat)
    {
        using var c = new Case(flat);
        var scaler = new GradScaler(initScale: 4f);
        c.Backward(scaler, 3f, 4f);
        scaler.Unscale(c.Optimizer);
        Assert.Equal(new[] { 3f, 4f }, c.Grad);
        if (c.Optimizer is IFlatOptimizer f) f.Flat.ClipGradNorm(1.0).Dispose();   // norm 5 → gradient [0.6, 0.8]
        else nn.utils.clip_grad_norm_([c.P], 1.0);
        Assert.True(scaler.Step(c.Optimizer));
        var g = c.Grad;
        Assert.Equal(0.6f, g[0], 5);
        Assert.Equal(0.8f, g[1], 5);
        Assert.Throws<InvalidOperationException>(() => scaler.Unscale(c.Optimizer));
        Assert.Throws<InvalidOperationException>(() => scaler.Step(c.Optimizer));
        scaler.Update();
        c.Backward(scaler, 1f, 1f);
        scaler.Unscale(c.Optimizer);
        Assert.Throws<InvalidOperationException>(() => scaler.Unscale(c.Optimizer));
    }

    [Fact]
    public void Update_without_a_step_is_refused()
    {
        var scaler = new GradScaler();
        Assert.Throws<InvalidOperationException>(() => scaler.Update());
    }

    [Fact]
    public void State_round_trip_continues_the_same_sequence()
    {
        using var a = new Case();
        using var b = new Case();
        var first = new GradScaler(initScale: 32f, growthInterval: 4);
        var pattern = new[] { true, true, false, true, true, true, true, true, false, true, true };
        void Run(GradScaler scaler, Case c, bool ok)
        {
            c.Backward(scaler, ok ? 1f : float.NaN, 1f);
            scaler.Step(c.Optimizer);
            scaler.Update();
        }
        for (var i = 0; i < 5; i++) Run(first, a, pattern[i]);
        // steps 1-5: ok (tracker 1), ok (2), NaN (scale 16, tracker 0), ok (1), ok (2)
        var saved = first.State;
        Assert.Equal(new GradScalerState(16f, 2f, 0.5f, 4, 2), saved);

        var second = new GradScaler(initScale: 32f, growthInterval: 4);
        second.Restore(saved);
        Assert.Equal(saved, second.State);
        for (var i = 5; i < pattern.Length; i++)
        {
            Run(first, a, pattern[i]);
            Run(second, b, pattern[i]);
            Assert.Equal(first.State, second.State);
        }
        // steps 6-11: ok (tracker 3), ok (4 = interval: scale 32, tracker 0), ok (1), NaN (16, 0), ok (1), ok (2)
        Assert.Equal(new GradScalerState(16f, 2f, 0.5f, 4, 2), second.State);
    }

    [Fact]
    public void Restore_refuses_an_implausible_or_foreign_state()
    {
        var scaler = new GradScaler();
        Assert.Throws<ArgumentException>(() => scaler.Restore(new GradScalerState(float.NaN, 2f, 0.5f, 2000, 0)));
        Assert.Throws<ArgumentException>(() => scaler.Restore(new GradScalerState(-1f, 2f, 0.5f, 2000, 0)));
        Assert.Throws<ArgumentException>(() => scaler.Restore(new GradScalerState(1f, 2f, 0.5f, 2000, 2000)));
        Assert.Throws<ArgumentException>(() => scaler.Restore(new GradScalerState(1f, 4f, 0.5f, 2000, 0)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new GradScaler(initScale: 0f));
        Assert.Throws<ArgumentOutOfRangeException>(() => new GradScaler(growthFactor: 1f));
        Assert.Throws<ArgumentOutOfRangeException>(() => new GradScaler(backoffFactor: 1f));
        Assert.Throws<ArgumentOutOfRangeException>(() => new GradScaler(growthInterval: 0));
    }
}
