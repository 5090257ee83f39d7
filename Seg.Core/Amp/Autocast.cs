using TorchSharp;
using Seg.Core.Native;
using static TorchSharp.torch;

namespace Seg.Core.Amp;

/// <summary>
/// libtorch's own automatic mixed precision (the engine behind PyTorch's <c>torch.autocast</c>), switched on and
/// off from C#. Inside a scope from <see cref="Enable"/>, the operations libtorch lists for reduced precision
/// (convolutions, linear layers, matmul) run in the scope's dtype, those it lists for float32 (losses, reductions,
/// norms) run in float32, and the rest follow their inputs; parameters stay float32 and their gradients too.
/// </summary>
/// <remarks>
/// <para>The state is libtorch's and it is per thread: a scope entered on one thread does not apply to operations
/// on another (data-loader workers, <c>Parallel.For</c> bodies, an <c>await</c> that resumes elsewhere). Enter and
/// leave a scope on the same thread; leaving it from another thread throws.</para>
/// <para>As in PyTorch, run the forward pass and the loss inside the scope and <c>backward()</c> after it: the
/// backward pass casts gradients to the dtypes the forward pass used.</para>
/// </remarks>
public static class Autocast
{
    /// <summary>Enters an autocast scope on this thread: operations on <paramref name="device"/> run in
    /// <paramref name="dtype"/> where libtorch's autocast lists say so. Dispose the result to leave it.</summary>
    /// <param name="device">The device type whose operations are cast (CPU, CUDA, MPS).</param>
    /// <param name="dtype">The reduced precision: <see cref="ScalarType.BFloat16"/> or <see cref="ScalarType.Float16"/>.</param>
    /// <exception cref="ArgumentException">A device type autocast does not cover, or a dtype that is not a reduced float.</exception>
    /// <exception cref="NotSupportedException">The loaded libtorch lacks one of the autocast functions.</exception>
    public static IDisposable Enable(DeviceType device, ScalarType dtype)
    {
        if (dtype is not (ScalarType.BFloat16 or ScalarType.Float16))
            throw new ArgumentException($"autocast runs in BFloat16 or Float16, not {dtype}.", nameof(dtype));
        return new Scope(CheckDevice(device), dtype, enabled: true);
    }

    /// <summary>Enters a scope in which autocast is off for <paramref name="device"/> on this thread (PyTorch's
    /// <c>torch.autocast(device, enabled=False)</c>), for code that must compute in the dtypes it is given.</summary>
    /// <exception cref="ArgumentException">A device type autocast does not cover.</exception>
    /// <exception cref="NotSupportedException">The loaded libtorch lacks one of the autocast functions.</exception>
    public static IDisposable Disable(DeviceType device) =>
        new Scope(CheckDevice(device), GetDtype(device), enabled: false);

    /// <summary>Whether autocast is on for <paramref name="device"/> on this thread.</summary>
    /// <exception cref="NotSupportedException">The loaded libtorch lacks <c>at::autocast::is_autocast_enabled</c>.</exception>
    public static unsafe bool IsEnabled(DeviceType device) => Native.IsEnabled((byte)CheckDevice(device)) != 0;

    /// <summary>The dtype autocast uses for <paramref name="device"/> on this thread (libtorch's defaults:
    /// BFloat16 on the CPU, Float16 on CUDA), whether or not it is on.</summary>
    /// <exception cref="NotSupportedException">The loaded libtorch lacks <c>at::autocast::get_autocast_dtype</c>.</exception>
    public static unsafe ScalarType GetDtype(DeviceType device) => (ScalarType)Native.GetDtype((byte)CheckDevice(device));

    /// <summary>A scope with autocast off for <paramref name="device"/> when it is on there, else null (also where
    /// the device type has no autocast, e.g. meta, or this libtorch lacks the functions: then it cannot be on).</summary>
    internal static IDisposable? SuspendIfEnabled(DeviceType device)
    {
        if (device is not (DeviceType.CPU or DeviceType.CUDA or DeviceType.MPS) || !Available.Value) return null;
        return IsEnabled(device) ? Disable(device) : null;
    }

    static readonly Lazy<bool> Available = new(() =>
    {
        try { _ = Native; return true; }
        catch (NotSupportedException) { return false; }
    });

    // The device types libtorch 2.10's autocast has dispatch keys for and TorchSharp can name; any other value
    // would make libtorch throw a C++ exception, which cannot cross into .NET.
    static DeviceType CheckDevice(DeviceType device) =>
        device is DeviceType.CPU or DeviceType.CUDA or DeviceType.MPS
            ? device
            : throw new ArgumentException($"autocast covers CPU, CUDA and MPS operations, not {device}.", nameof(device));

    /// <summary>One entered scope: what it replaced, restored on leaving, as <c>torch.autocast.__exit__</c>.</summary>
    sealed class Scope : IDisposable
    {
        readonly DeviceType device;
        readonly bool previousEnabled, previousCacheEnabled;
        readonly ScalarType previousDtype;
        readonly int threadId = Environment.CurrentManagedThreadId;
        bool left;

        public unsafe Scope(DeviceType device, ScalarType dtype, bool enabled)
        {
            this.device = device;
            var (native, d) = (Native, (byte)device);
            previousCacheEnabled = native.IsCacheEnabled() != 0;
            previousEnabled = native.IsEnabled(d) != 0;
            previousDtype = (ScalarType)native.GetDtype(d);
            native.SetEnabled(d, enabled ? (byte)1 : (byte)0);
            native.SetDtype(d, (byte)dtype);
            native.IncrementNesting();
        }

        public unsafe void Dispose()
        {
            if (left) return;
            if (Environment.CurrentManagedThreadId != threadId)
                throw new InvalidOperationException(
                    $"an autocast scope entered on thread {threadId} is being left on thread {Environment.CurrentManagedThreadId}; " +
                    "libtorch keeps autocast state per thread, so leave it where it was entered.");
            left = true;
            var (native, d) = (Native, (byte)device);
            // Cast copies of the weights live as long as the outermost scope: free them when it ends.
            if (native.DecrementNesting() == 0) native.ClearCache();
            native.SetEnabled(d, previousEnabled ? (byte)1 : (byte)0);
            native.SetDtype(d, (byte)previousDtype);
            native.SetCacheEnabled(previousCacheEnabled ? (byte)1 : (byte)0);
        }
    }

    static Functions Native => functions.Value;
    static readonly Lazy<Functions> functions = new(() => new Functions(), LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>libtorch's <c>at::autocast</c> functions (ATen's autocast_mode.h), resolved once, on first use; a
    /// missing one throws <see cref="NotSupportedException"/> on every use.</summary>
    sealed unsafe class Functions
    {
        public readonly delegate* unmanaged<byte, byte> IsEnabled = (delegate* unmanaged<byte, byte>)LibTorchSymbols.Require(
            "_ZN2at8autocast19is_autocast_enabledEN3c1010DeviceTypeE", "at::autocast::is_autocast_enabled(DeviceType)");
        public readonly delegate* unmanaged<byte, byte, void> SetEnabled = (delegate* unmanaged<byte, byte, void>)LibTorchSymbols.Require(
            "_ZN2at8autocast20set_autocast_enabledEN3c1010DeviceTypeEb", "at::autocast::set_autocast_enabled(DeviceType, bool)");
        public readonly delegate* unmanaged<byte, byte> GetDtype = (delegate* unmanaged<byte, byte>)LibTorchSymbols.Require(
            "_ZN2at8autocast18get_autocast_dtypeEN3c1010DeviceTypeE", "at::autocast::get_autocast_dtype(DeviceType)");
        public readonly delegate* unmanaged<byte, byte, void> SetDtype = (delegate* unmanaged<byte, byte, void>)LibTorchSymbols.Require(
            "_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE", "at::autocast::set_autocast_dtype(DeviceType, ScalarType)");
        public readonly delegate* unmanaged<int> IncrementNesting = (delegate* unmanaged<int>)LibTorchSymbols.Require(
            "_ZN2at8autocast17increment_nestingEv", "at::autocast::increment_nesting()");
        public readonly delegate* unmanaged<int> DecrementNesting = (delegate* unmanaged<int>)LibTorchSymbols.Require(
            "_ZN2at8autocast17decrement_nestingEv", "at::autocast::decrement_nesting()");
        public readonly delegate* unmanaged<void> ClearCache = (delegate* unmanaged<void>)LibTorchSymbols.Require(
            "_ZN2at8autocast11clear_cacheEv", "at::autocast::clear_cache()");
        public readonly delegate* unmanaged<byte> IsCacheEnabled = (delegate* unmanaged<byte>)LibTorchSymbols.Require(
            "_ZN2at8autocast25is_autocast_cache_enabledEv", "at::autocast::is_autocast_cache_enabled()");
        public readonly delegate* unmanaged<byte, void> SetCacheEnabled = (delegate* unmanaged<byte, void>)LibTorchSymbols.Require(
            "_ZN2at8autocast26set_autocast_cache_enabledEb", "at::autocast::set_autocast_cache_enabled(bool)");
    }
}
