using Seg.Core.Amp;
using static TorchSharp.torch;

namespace Seg.Train.Training;

/// <summary>
/// The precision a run computes in (<c>train.precision</c>): <c>fp32</c>, or <c>bf16</c> / <c>fp16</c> autocast
/// for the forward pass and the loss (weights, gradients and the optimizer step stay float32, as in PyTorch AMP);
/// <c>fp16</c> also scales the loss (<see cref="GradScaler"/>), bf16 has float32's range and needs no scaling.
/// </summary>
/// <param name="Name">The resolved precision: <c>fp32</c>, <c>bf16</c> or <c>fp16</c> (never <c>auto</c>).</param>
/// <param name="Why">How it was chosen, for the run's first output line.</param>
public sealed record RunPrecision(string Name, string Why)
{
    /// <summary>The values <c>train.precision</c> takes.</summary>
    public static readonly string[] Choices = ["fp32", "bf16", "fp16", "auto"];

    /// <summary>Float32 throughout.</summary>
    public static readonly RunPrecision Fp32 = new("fp32", "train.precision: fp32");

    /// <summary>Resolves <paramref name="configured"/> for <paramref name="device"/>: <c>auto</c> is bf16 where the
    /// device computes bfloat16 natively (CUDA compute capability 8.0+, a CPU with AVX512-BF16 or AMX), else fp32.</summary>
    public static RunPrecision Resolve(string configured, Device device)
    {
        if (configured != "auto") return new RunPrecision(configured, $"train.precision: {configured}");
        var (native, reason) = BFloat16Support.Check(device);
        return native
            ? new RunPrecision("bf16", $"train.precision: auto -> bf16 ({reason})")
            : new RunPrecision("fp32", $"train.precision: auto -> fp32 ({reason})");
    }

    /// <summary>The precision and, where <c>auto</c> chose it, why: "bf16 (auto: CPU has avx512_bf16)".</summary>
    public string Describe() => Why.StartsWith("train.precision: auto", StringComparison.Ordinal)
        ? $"{Name} (auto: {Why[(Why.IndexOf('(') + 1)..^1]})"
        : Name;

    /// <summary>The autocast dtype, or null for fp32.</summary>
    public ScalarType? AutocastType => Name switch
    {
        "bf16" => ScalarType.BFloat16,
        "fp16" => ScalarType.Float16,
        _ => null,
    };

    /// <summary>An autocast scope for <paramref name="device"/> on this thread (null for fp32): enter it around the
    /// forward pass and the loss, on the thread that runs them.</summary>
    public IDisposable? Autocast(Device device) =>
        AutocastType is { } dtype ? Seg.Core.Amp.Autocast.Enable(device.type, dtype) : null;

    /// <summary>A loss scaler for fp16 (PyTorch's defaults), null otherwise.</summary>
    public GradScaler? CreateScaler() => Name == "fp16" ? new GradScaler() : null;

    /// <summary>
    /// The precision <c>eval</c> and <c>predict</c> use: the one the run trained in (<paramref name="recorded"/>,
    /// from the checkpoint), unless the overrides set <c>train.precision</c>; then (or for a checkpoint that records
    /// none) the config's.
    /// </summary>
    public static RunPrecision ForInference(string configured, IReadOnlyList<string> overrides, string? recorded, Device device) =>
        recorded is not null && !overrides.Any(o => o.TrimStart().StartsWith("train.precision=", StringComparison.Ordinal))
            ? new RunPrecision(recorded, $"precision {recorded}, as the run was trained")
            : Resolve(configured, device);
}
