using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses;

/// <summary>
/// The losses' check that every non-ignored label is a class in [0, C). On the CPU a bad label throws at once.
/// On any other device, reading the check's result would make the host wait for the device (a synchronisation in
/// every loss call), so the check is reduced on the device instead: the pixels with bad labels are left out of the
/// loss like ignored ones (never handed to a kernel that would trip a device-side assert), and the result waits,
/// per thread, until <see cref="ThrowIfAnyFailed"/> reads it. The trainer calls that at every log step; library
/// users training on a GPU call it where they read their loss values anyway.
/// </summary>
public static class LabelChecks
{
    /// <summary>Checks deferred on this thread, by what they checked: a flag and the first bad label, on the device.</summary>
    [ThreadStatic] static Dictionary<string, Pending>? pending;

    /// <summary>Tests set this to run the deferred form on CPU tensors.</summary>
    [ThreadStatic] internal static bool DeferOnCpu;

    /// <summary>At most this many distinct deferred checks wait at once; one more reads them all first.</summary>
    const int MaxPending = 64;

    sealed record Pending(Tensor Failed, Tensor FirstBad, string Shape, long ClassCount, string What);

    /// <summary>
    /// Reads the label checks deferred on this thread (one host synchronisation when there are any) and forgets
    /// them; throws for the first that failed.
    /// </summary>
    /// <exception cref="ArgumentException">A non-ignored label was outside the classes of the loss's input
    /// (the message names the value, the labels' shape and the input).</exception>
    public static void ThrowIfAnyFailed()
    {
        if (pending is not { Count: > 0 } checks) return;
        pending = null;
        using var scope = NewDisposeScope();
        var failed = stack(checks.Values.Select(c => c.Failed.to(ScalarType.Int64)).ToArray()).cpu();
        var first = stack(checks.Values.Select(c => c.FirstBad).ToArray()).cpu();
        var records = checks.Values.ToArray();
        foreach (var c in records) { c.Failed.Dispose(); c.FirstBad.Dispose(); }
        for (int i = 0; i < records.Length; i++)
            if (failed[i].item<long>() != 0)
                throw OutOfRange(first[i].item<long>(), records[i].Shape, records[i].ClassCount, records[i].What);
    }

    /// <summary>Forgets this thread's deferred checks unread (tests on the meta device, whose flags hold no data).</summary>
    internal static void DiscardPending()
    {
        if (pending is null) return;
        foreach (var c in pending.Values) { c.Failed.Dispose(); c.FirstBad.Dispose(); }
        pending = null;
    }

    /// <summary>
    /// The valid mask of <paramref name="labels"/> after the range check: on the CPU the check runs at once and the
    /// mask is returned as it is; elsewhere the check is deferred and the mask loses the pixels whose labels are bad.
    /// </summary>
    internal static Tensor Check(Tensor labels, Tensor valid, long classCount, string what)
    {
        if (labels.numel() == 0) return valid;
        var bad = (labels.lt(0) | labels.ge(classCount)) & valid;
        if (!Defers(labels))
        {
            ThrowIfAny(bad, labels, classCount, what);
            return valid;
        }
        Defer(bad, labels, classCount, what);
        return valid & ~bad;
    }

    /// <summary>Whether <see cref="Check"/> defers the check of these labels (any device but the CPU).</summary>
    internal static bool Defers(Tensor labels) => labels.device_type != DeviceType.CPU || DeferOnCpu;

    /// <summary>The check at once on any device (a host synchronisation off the CPU), for losses that hand the
    /// labels on unmasked.</summary>
    internal static void CheckNow(Tensor labels, Tensor valid, long classCount, string what)
    {
        if (labels.numel() == 0) return;
        using var scope = NewDisposeScope();
        ThrowIfAny((labels.lt(0) | labels.ge(classCount)) & valid, labels, classCount, what);
    }

    static void ThrowIfAny(Tensor bad, Tensor labels, long classCount, string what)
    {
        if (bad.any().item<bool>())
            throw OutOfRange(labels.masked_select(bad)[0].item<long>(), LossInputs.Shape(labels), classCount, what);
    }

    static void Defer(Tensor bad, Tensor labels, long classCount, string what)
    {
        using var noGrad = no_grad();
        var checks = pending ??= new Dictionary<string, Pending>();
        string shape = LossInputs.Shape(labels);
        string key = $"{shape}|{classCount}|{what}";
        if (!checks.ContainsKey(key) && checks.Count >= MaxPending) ThrowIfAnyFailed();
        checks = pending ??= new Dictionary<string, Pending>();
        using var scope = NewDisposeScope();
        var flatBad = bad.flatten();
        var failed = flatBad.any();
        // argmax gives the first maximum: the first bad pixel, or pixel 0 (unused) when there is none.
        var firstBad = labels.flatten().gather(0, flatBad.to(ScalarType.Byte).argmax().view(1)).view([]);
        if (checks.TryGetValue(key, out var earlier))
        {
            // Keep the earliest failure: first = earlier failed ? earlier first : this first.
            var keepEarlier = earlier.Failed.to(ScalarType.Int64);
            firstBad = firstBad + keepEarlier * (earlier.FirstBad - firstBad);
            failed = failed | earlier.Failed;
            earlier.Failed.Dispose();
            earlier.FirstBad.Dispose();
        }
        checks[key] = new Pending(failed.DetachFromDisposeScope(), firstBad.DetachFromDisposeScope(), shape, classCount, what);
    }

    internal static ArgumentException OutOfRange(long value, string shape, long classCount, string what) =>
        new($"labels {shape} hold {value}: label {value} is outside the {classCount} classes [0,{classCount}) of {what} and is not the ignore index.", "labels");
}
