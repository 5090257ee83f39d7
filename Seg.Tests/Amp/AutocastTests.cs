using Seg.Core.Amp;
using Seg.Core.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Tests.Amp;

/// <summary>The autocast scope against libtorch's own state and against the same operations computed in
/// bfloat16 by hand (inputs and weights cast first, autocast off).</summary>
public class AutocastTests
{
    [Fact]
    public void Scope_switches_on_and_restores_flag_and_dtype_when_nested()
    {
        Assert.False(Autocast.IsEnabled(DeviceType.CPU));
        var initial = Autocast.GetDtype(DeviceType.CPU);
        using (Autocast.Enable(DeviceType.CPU, ScalarType.BFloat16))
        {
            Assert.True(Autocast.IsEnabled(DeviceType.CPU));
            Assert.Equal(ScalarType.BFloat16, Autocast.GetDtype(DeviceType.CPU));
            using (Autocast.Enable(DeviceType.CPU, ScalarType.Float16))
                Assert.Equal(ScalarType.Float16, Autocast.GetDtype(DeviceType.CPU));
            Assert.True(Autocast.IsEnabled(DeviceType.CPU));
            Assert.Equal(ScalarType.BFloat16, Autocast.GetDtype(DeviceType.CPU));
            using (Autocast.Disable(DeviceType.CPU))
                Assert.False(Autocast.IsEnabled(DeviceType.CPU));
            Assert.True(Autocast.IsEnabled(DeviceType.CPU));
            Assert.False(Autocast.IsEnabled(DeviceType.CUDA));   // one device type's scope leaves the others alone
        }
        Assert.False(Autocast.IsEnabled(DeviceType.CPU));
        Assert.Equal(initial, Autocast.GetDtype(DeviceType.CPU));
    }

    [Fact]
    public void Scope_is_left_when_the_body_throws()
    {
        static void Body()
        {
            using (Autocast.Enable(DeviceType.CPU, ScalarType.Float16))
                throw new InvalidTimeZoneException();
        }
        Assert.Throws<InvalidTimeZoneException>(Body);
        Assert.False(Autocast.IsEnabled(DeviceType.CPU));
        Assert.Equal(ScalarType.BFloat16, Autocast.GetDtype(DeviceType.CPU));
    }

    [Fact]
    public void Disposing_twice_changes_nothing_the_second_time()
    {
        using (Autocast.Enable(DeviceType.CPU, ScalarType.BFloat16))
        {
            var inner = Autocast.Enable(DeviceType.CPU, ScalarType.Float16);
            inner.Dispose();
            inner.Dispose();
            Assert.True(Autocast.IsEnabled(DeviceType.CPU));
            Assert.Equal(ScalarType.BFloat16, Autocast.GetDtype(DeviceType.CPU));
        }
    }

    [Fact]
    public void State_is_per_thread()
    {
        bool otherSawEnabled = true;
        ScalarType otherOutput = ScalarType.Int8;
        using (Autocast.Enable(DeviceType.CPU, ScalarType.BFloat16))
        {
            var thread = new Thread(() =>
            {
                otherSawEnabled = Autocast.IsEnabled(DeviceType.CPU);
                using var x = randn(2, 3);
                using var w = randn(4, 3);
                using var y = nn.functional.linear(x, w);
                otherOutput = y.dtype;
            });
            thread.Start();
            thread.Join();
        }
        Assert.False(otherSawEnabled);
        Assert.Equal(ScalarType.Float32, otherOutput);

        // and a scope left open on another thread does not reach this one
        using var entered = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var holder = new Thread(() =>
        {
            using (Autocast.Enable(DeviceType.CPU, ScalarType.BFloat16))
            {
                entered.Set();
                release.Wait();
            }
        });
        holder.Start();
        entered.Wait();
        try { Assert.False(Autocast.IsEnabled(DeviceType.CPU)); }
        finally { release.Set(); holder.Join(); }
    }

    [Fact]
    public void Leaving_a_scope_on_another_thread_throws()
    {
        var scope = Autocast.Enable(DeviceType.CPU, ScalarType.BFloat16);
        Exception? error = null;
        var thread = new Thread(() => { try { scope.Dispose(); } catch (Exception e) { error = e; } });
        thread.Start();
        thread.Join();
        Assert.IsType<InvalidOperationException>(error);
        scope.Dispose();
        Assert.False(Autocast.IsEnabled(DeviceType.CPU));
    }

    [Fact]
    public void Bad_arguments_are_refused_before_libtorch_sees_them()
    {
        Assert.Throws<ArgumentException>(() => Autocast.Enable(DeviceType.CPU, ScalarType.Float32));
        Assert.Throws<ArgumentException>(() => Autocast.Enable(DeviceType.CPU, ScalarType.Int64));
        Assert.Throws<ArgumentException>(() => Autocast.Enable((DeviceType)99, ScalarType.BFloat16));
        Assert.False(Autocast.IsEnabled(DeviceType.CPU));
    }

    [Fact]
    public void Missing_symbol_names_itself_and_the_library()
    {
        var e = Assert.Throws<NotSupportedException>(() => LibTorchSymbols.Require("_ZN2at8autocast14no_such_thingEv", "at::autocast::no_such_thing()"));
        Assert.Contains("_ZN2at8autocast14no_such_thingEv", e.Message);
        Assert.Contains("libtorch_cpu", e.Message);
        Assert.Contains(LibTorchSymbols.LibraryPath, e.Message);
    }

    [Fact]
    public void Conv_and_linear_run_in_bfloat16_with_float32_weight_gradients()
    {
        using var scope = NewDisposeScope();
        var generator = new Generator(7);
        var conv = nn.Conv2d(3, 4, 3, padding: 1);
        var fc = nn.Linear(4, 5);
        var x = randn(new long[] { 2, 3, 6, 6 }, generator: generator);
        Tensor features, logits;
        using (Autocast.Enable(DeviceType.CPU, ScalarType.BFloat16))
        {
            features = conv.call(x);
            logits = fc.call(features.mean([2, 3]));
            Assert.Equal(ScalarType.BFloat16, features.dtype);
            Assert.Equal(ScalarType.BFloat16, logits.dtype);
        }
        // the same products computed by hand in bfloat16, autocast off
        var expectedFeatures = nn.functional.conv2d(x.to(ScalarType.BFloat16), conv.weight!.to(ScalarType.BFloat16),
            conv.bias!.to(ScalarType.BFloat16), padding: [1, 1]);
        Assert.True(features.Equals(expectedFeatures));
        var expectedLogits = nn.functional.linear(features.mean([2, 3]), fc.weight!.to(ScalarType.BFloat16), fc.bias!.to(ScalarType.BFloat16));
        Assert.True(logits.Equals(expectedLogits));

        logits.to(ScalarType.Float32).square().sum().backward();
        Assert.Equal(ScalarType.Float32, conv.weight!.grad!.dtype);
        Assert.Equal(ScalarType.Float32, fc.weight!.grad!.dtype);
        Assert.Equal(ScalarType.Float32, conv.weight!.dtype);
        // outside the scope the same module computes in float32 again
        Assert.Equal(ScalarType.Float32, conv.call(x).dtype);
    }

    [Fact]
    public void Float16_scope_casts_linear_to_float16()
    {
        using var scope = NewDisposeScope();
        var x = randn(3, 4);
        var w = randn(2, 4);
        using (Autocast.Enable(DeviceType.CPU, ScalarType.Float16))
        {
            var y = nn.functional.linear(x, w);
            Assert.Equal(ScalarType.Float16, y.dtype);
            // elementwise operations are not on autocast's lists: they follow their inputs
            Assert.Equal(ScalarType.Float32, (x * 2).dtype);
        }
    }
}

/// <summary>The GPU switches in at::Context: set and read back (on the CPU they change nothing else).</summary>
public class TorchBackendsTests
{
    [Fact]
    public void Flags_read_back_what_was_set()
    {
        var (benchmark, cudnn, cublas) = (TorchBackends.CudnnBenchmark, TorchBackends.AllowTF32CuDnn, TorchBackends.AllowTF32CuBlas);
        try
        {
            foreach (var value in new[] { true, false })
            {
                TorchBackends.CudnnBenchmark = value;
                TorchBackends.AllowTF32CuDnn = value;
                TorchBackends.AllowTF32CuBlas = value;
                Assert.Equal(value, TorchBackends.CudnnBenchmark);
                Assert.Equal(value, TorchBackends.AllowTF32CuDnn);
                Assert.Equal(value, TorchBackends.AllowTF32CuBlas);
            }
            // TorchSharp's own flags reach the same switches
            TorchBackends.AllowTF32CuBlas = true;
            Assert.True(torch.backends.cuda.matmul.allow_tf32);
            TorchBackends.AllowTF32CuDnn = true;
            Assert.True(torch.backends.cudnn.allow_tf32);
        }
        finally
        {
            (TorchBackends.CudnnBenchmark, TorchBackends.AllowTF32CuDnn, TorchBackends.AllowTF32CuBlas) = (benchmark, cudnn, cublas);
        }
    }
}
