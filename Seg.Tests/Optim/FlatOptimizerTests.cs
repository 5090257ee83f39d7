using Seg.Core.Optim;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Seg.Tests.Optim;

/// <summary>
/// The flat optimizers against TorchSharp's own SGD and AdamW (the oracle: an independent per-parameter
/// implementation): the same model, data and hyper-parameters for 200 steps end with the same weights to float32
/// rounding; and the flat buffers survive what a training loop does to parameters and gradients.
/// </summary>
public class FlatOptimizerTests
{
    // A small network with every kind of parameter tensor a segmentation model has: conv weights and biases,
    // BatchNorm affine parameters (and running statistics, which are buffers), a linear layer.
    static Sequential Net()
    {
        var net = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding: 1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding: 1, bias: false), nn.BatchNorm2d(8), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5));
        // Weights from a private generator: tests running beside this one draw from the global one.
        var generator = new Generator(7);
        using (no_grad())
            foreach (var p in net.parameters()) p.copy_(randn(p.shape, generator: generator) * 0.3 + (p.dim() == 1 ? 1 : 0));
        return net;
    }

    static float[] Train(Func<IEnumerable<Parameter>, optim.Optimizer> create, int steps, double clip = 0)
    {
        using var net = Net();
        net.train();
        using var optimizer = create(net.parameters());
        var generator = new Generator(11);
        for (var i = 0; i < steps; i++)
        {
            using var scope = NewDisposeScope();
            var x = randn([4, 3, 6, 6], generator: generator);
            var y = randint(0, 5, [4], generator: generator);
            optimizer.zero_grad();
            nn.functional.cross_entropy(net.forward(x), y).backward();
            if (clip > 0 && optimizer is IFlatOptimizer flat) flat.Flat.ClipGradNorm(clip).Dispose();
            else if (clip > 0) nn.utils.clip_grad_norm_(net.parameters(), clip);
            optimizer.step();
        }
        return net.parameters().SelectMany(p => p.detach().cpu().data<float>().ToArray()).ToArray();
    }

    static void AssertSameWeights(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        var scale = expected.Max(Math.Abs);
        var worst = expected.Zip(actual, (e, a) => Math.Abs(e - a)).Max();
        Assert.True(worst <= 1e-5f * scale, $"largest difference {worst:g3} against weights up to {scale:g3}");
        Assert.NotEqual(Train(p => optim.SGD(p, 0.0), 0), expected);   // the runs moved the weights at all
    }

    [Theory]
    [InlineData(0.9, 5e-4, false)]
    [InlineData(0.9, 1e-2, true)]
    [InlineData(0.0, 0.0, false)]
    public void FlatSGD_matches_TorchSharps_SGD_over_200_steps(double momentum, double decay, bool nesterov)
    {
        var expected = Train(p => optim.SGD(p, 0.05, momentum: momentum, weight_decay: decay, nesterov: nesterov), 200);
        var actual = Train(p => new FlatSGD(p, 0.05, momentum: momentum, weight_decay: decay, nesterov: nesterov), 200);
        AssertSameWeights(expected, actual);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.05)]
    public void FlatAdamW_matches_TorchSharps_AdamW_over_200_steps(double decay)
    {
        var expected = Train(p => optim.AdamW(p, 3e-3, beta1: 0.8, beta2: 0.99, weight_decay: decay), 200);
        var actual = Train(p => new FlatAdamW(p, 3e-3, beta1: 0.8, beta2: 0.99, weight_decay: decay), 200);
        AssertSameWeights(expected, actual);
    }

    [Fact]
    public void Clipping_the_flat_gradient_matches_clip_grad_norm()
    {
        var expected = Train(p => optim.SGD(p, 0.05, momentum: 0.9), 50, clip: 0.5);
        var actual = Train(p => new FlatSGD(p, 0.05, momentum: 0.9), 50, clip: 0.5);
        AssertSameWeights(expected, actual);
    }

    [Fact]
    public void Parameters_and_gradients_become_views_of_the_flat_buffers()
    {
        using var net = Net();
        var before = net.parameters().Select(p => p.detach().clone()).ToList();
        using var optimizer = new FlatAdamW(net.parameters());
        var parameters = net.parameters().ToList();
        Assert.Equal(parameters.Sum(p => p.numel()), optimizer.Flat.Values.numel());
        for (var i = 0; i < parameters.Count; i++) Assert.True(parameters[i].eq(before[i]).all().item<bool>(), $"parameter {i} changed value");
        // Writing the buffer writes the parameters and their gradients, and the optimizer's state is a view too.
        using (no_grad()) optimizer.Flat.Values.fill_(2f);
        optimizer.Flat.Gradients.fill_(3f);
        Assert.All(parameters, p => Assert.True(p.eq(2f).all().item<bool>()));
        Assert.All(parameters, p => { using var g = p.grad!; Assert.True(g.eq(3f).all().item<bool>()); });
        optimizer.zero_grad();
        Assert.All(parameters, p => { using var g = p.grad!; Assert.Equal(0f, g.abs().sum().item<float>()); });
    }

    [Fact]
    public void A_replaced_or_removed_gradient_is_taken_back_into_the_buffer()
    {
        // Both optimizers see the same gradients, set by hand: p0's replaced by a new tensor, p1's removed.
        float[] Run(bool flat)
        {
            using var net = Net();
            using var optimizer = flat ? new FlatSGD(net.parameters(), 0.1) : optim.SGD(net.parameters(), 0.1);
            var parameters = net.parameters().ToList();
            foreach (var p in parameters) p.grad = ones_like(p);
            parameters[0].grad = full_like(parameters[0], 5f);
            parameters[1].grad = null;
            optimizer.step();
            return parameters.SelectMany(p => p.detach().data<float>().ToArray()).ToArray();
        }
        var expected = Run(false);
        var actual = Run(true);
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void Zero_grad_and_clipping_also_take_back_a_replaced_gradient()
    {
        // A stale gradient put in place before zero_grad must be cleared by it, and one put in place after backward
        // must be the one clipped, as with TorchSharp's per-tensor optimizer and clip_grad_norm_.
        float[] Run(bool flat)
        {
            using var net = Net();
            net.train();
            using var optimizer = flat ? new FlatSGD(net.parameters(), 0.1) : optim.SGD(net.parameters(), 0.1);
            var parameters = net.parameters().ToList();
            parameters[0].grad = full_like(parameters[0], 7f);
            optimizer.zero_grad();
            var generator = new Generator(5);
            nn.functional.cross_entropy(net.forward(randn([4, 3, 6, 6], generator: generator)), randint(0, 5, [4], generator: generator)).backward();
            parameters[1].grad = full_like(parameters[1], 100f);
            if (optimizer is IFlatOptimizer f) f.Flat.ClipGradNorm(1.0).Dispose();
            else nn.utils.clip_grad_norm_(net.parameters(), 1.0);
            optimizer.step();
            return parameters.SelectMany(p => p.detach().data<float>().ToArray()).ToArray();
        }
        AssertSameWeights(Run(false), Run(true));
    }

    [Fact]
    public void Replaced_state_tensors_are_adopted_as_a_restored_checkpoint_is()
    {
        // TorchSharp's load_state_dict swaps the state tensors; the next flat step must continue from them.
        float[] Run(bool flat)
        {
            using var net = Net();
            using var optimizer = flat ? new FlatAdamW(net.parameters(), 0.01) : optim.AdamW(net.parameters(), 0.01);
            var parameters = net.parameters().ToList();
            var states = optimizer.state_dict().State.Cast<AdamW.State>().ToList();
            for (var i = 0; i < parameters.Count; i++)
            {
                states[i].step = 3;
                states[i].exp_avg = full_like(parameters[i], 0.1f * (i + 1));
                states[i].exp_avg_sq = full_like(parameters[i], 0.01f);
                parameters[i].grad = full_like(parameters[i], -0.5f);
            }
            optimizer.step();
            optimizer.step();
            return parameters.SelectMany(p => p.detach().data<float>().ToArray()).ToArray();
        }
        Assert.Equal(Run(false), Run(true));
    }

    [Fact]
    public void Parameters_that_cannot_share_a_buffer_are_refused_with_the_reason()
    {
        var a = new Parameter(zeros(3));
        var b = new Parameter(zeros(3, dtype: ScalarType.Float64));
        var frozen = new Parameter(zeros(2), requires_grad: false);
        Assert.Contains("parameter 1 is Float64", FlatParameters.Problem([a, b]));
        Assert.Contains("parameter 1 does not require a gradient", FlatParameters.Problem([a, frozen]));
        Assert.Contains("parameter 1 appears twice", FlatParameters.Problem([a, a]));
        Assert.Equal("there are no parameters", FlatParameters.Problem([]));
        var e = Assert.Throws<ArgumentException>(() => new FlatSGD([a, b], 0.1));
        Assert.Contains("cannot flatten", e.Message);
        Assert.Throws<ArgumentException>(() => new FlatAdamW([a, a]));
        // The half-built optimizers are finalized without touching state their base constructors never made.
        GC.Collect();
        GC.WaitForPendingFinalizers();
    }
}
