using System.Runtime.InteropServices;
using Seg.Core.Losses;
using Seg.Core.Losses.LovaszLosses;
using Seg.Core.Losses.MetricLosses;
using Seg.Core.Losses.PixelLosses;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Bench;

/// <summary>
/// <c>Seg.Bench sync-check</c>, for a CUDA machine (<c>SEG_BENCH_DEVICE=cuda</c>): turns on ATen's CUDA
/// synchronisation debug mode in "error" (what <c>torch.cuda.set_sync_debug_mode("error")</c> does in PyTorch),
/// under which every operation that makes the host wait for the device throws, then runs each loss of a training
/// step forward and backward. The CPU-side proof is Seg.Tests' NoHostSyncTests (meta device); this is the same
/// claim checked on a real device. Exit code 0: no loss synchronised; 1: some did; 2: the check could not run.
/// </summary>
internal static class SyncCheck
{
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    delegate IntPtr WarningStateFunction();

    public static int Run()
    {
        Device device;
        try { device = LovaszBenchmarks.BenchDevice(); }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            Console.Error.WriteLine($"sync-check: {e.Message}");
            return 2;
        }
        if (device.type != DeviceType.CUDA)
        {
            Console.Error.WriteLine("sync-check: set SEG_BENCH_DEVICE=cuda (or cuda:N); it checks CUDA synchronisations.");
            return 2;
        }
        torch.manual_seed(0);
        var logits = randn(8, 21, 128, 128).to(device).requires_grad_(true);
        var labels = randint(0, 21, [8, 128, 128]).masked_fill(rand(8, 128, 128).lt(0.05), 255).to(device);
        var binaryLogits = randn(8, 128, 128).to(device).requires_grad_(true);
        var binaryLabels = randint(0, 2, [8, 128, 128]).masked_fill(rand(8, 128, 128).lt(0.05), 255).to(device);
        var cases = new (string Name, Func<Tensor> Loss, Tensor Input)[]
        {
            ("lovasz_softmax exact", () => new LovaszSoftmaxLoss().call(logits, labels), logits),
            ("lovasz_softmax exact per image", () => new LovaszSoftmaxLoss(perImage: true).call(logits, labels), logits),
            ("lovasz_softmax histogram 4096", () => new LovaszSoftmaxLoss(bins: 4096).call(logits, labels), logits),
            ("lovasz_softmax only(3,1)", () => new LovaszSoftmaxLoss(ClassSelection.Only(3, 1)).call(logits, labels), logits),
            ("lovasz_hinge", () => new LovaszHingeLoss().call(binaryLogits, binaryLabels), binaryLogits),
            ("cross_entropy", () => crossEntropy.call(logits, labels), logits),
            ("dice", () => new DiceLoss().call(logits, labels), logits),
            ("focal", () => new FocalLoss().call(logits, labels), logits),
            ("binary_cross_entropy", () => new BinaryCrossEntropyLoss().call(binaryLogits, binaryLabels), binaryLogits),
            ("composite ce + lovasz", () => composite.call(logits, labels), logits),
        };
        // One call each before the check: first calls set up cuBLAS/cuDNN handles and copy constants once
        // (cross-entropy's class weights), which may wait for the device by design.
        foreach (var c in cases) Step(c.Loss, c.Input);
        LabelChecks.ThrowIfAnyFailed();
        cuda.synchronize();

        if (!SetSyncDebugMode(2, out var why))
        {
            Console.Error.WriteLine($"sync-check: cannot turn on CUDA's synchronisation debug mode: {why}");
            return 2;
        }
        try
        {
            // The control: a read of a value must throw now, or the mode has no effect and nothing below means anything.
            try
            {
                logits.sum().item<float>();
                Console.Error.WriteLine("sync-check: the debug mode did not catch item(); the check is inconclusive.");
                return 2;
            }
            catch (Exception e) when (e.Message.Contains("synchroniz", StringComparison.OrdinalIgnoreCase)) { }

            int failures = 0;
            foreach (var c in cases)
            {
                try
                {
                    Step(c.Loss, c.Input);
                    Console.WriteLine($"{c.Name}: no host synchronisation (forward + backward)");
                }
                catch (Exception e)
                {
                    failures++;
                    Console.WriteLine($"{c.Name}: SYNCHRONISES: {e.Message.Split('\n')[0]}");
                }
            }
            return failures == 0 ? 0 : 1;
        }
        finally
        {
            SetSyncDebugMode(0, out _);
        }
    }

    static readonly SoftmaxCrossEntropyLoss crossEntropy = new([1.0, 2.0, .. Enumerable.Repeat(1.0, 19)]);
    static readonly CompositeLoss composite = new([
        new LossTerm("ce", new SoftmaxCrossEntropyLoss()), new LossTerm("lovasz", new LovaszSoftmaxLoss(perImage: true))]);

    static void Step(Func<Tensor> loss, Tensor input)
    {
        using var scope = NewDisposeScope();
        input.grad?.zero_();
        loss().backward();
    }

    /// <summary>
    /// Sets c10's CUDA <c>SyncDebugMode</c> (0 off, 1 warn, 2 error): <c>c10::cuda::warning_state()</c> of
    /// libc10_cuda returns the one <c>WarningState</c>, whose only field is the mode (an int-sized enum).
    /// </summary>
    static bool SetSyncDebugMode(int mode, out string why)
    {
        why = "";
        if (!NativeLibrary.TryLoad("libc10_cuda.so", out var library))
        {
            why = "libc10_cuda.so is not loaded (is this a CUDA libtorch?)";
            return false;
        }
        IntPtr state;
        if (NativeLibrary.TryGetExport(library, "_ZN3c104cuda13warning_stateEv", out var function))
            state = Marshal.GetDelegateForFunctionPointer<WarningStateFunction>(function)();
        else if (!NativeLibrary.TryGetExport(library, "_ZZN3c104cuda13warning_stateEvE14warning_state_", out state))
        {
            why = "libc10_cuda.so exports neither c10::cuda::warning_state() nor its static object (nm -D libc10_cuda.so | grep warning_state)";
            return false;
        }
        Marshal.WriteInt32(state, mode);
        return true;
    }
}
