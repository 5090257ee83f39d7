using System.Globalization;
using System.Reflection;
using System.Text.Json.Nodes;
using Seg.Core;
using Seg.Train.Config;
using TorchSharp;

namespace Seg.Train.Reports;

/// <summary>
/// What a report says about the run behind its numbers, so that a report read later (or beside another) says
/// what was trained and how: dataset, model, loss terms, optimizer and learning rate, seed, device, precision,
/// date, Seg's version and the checkpoint scored; plus warnings that make the numbers suspect.
/// </summary>
/// <param name="Dataset">The data section in a few words (type, root, split sizes).</param>
/// <param name="Model">The model section in a few words.</param>
/// <param name="LossTerms">One entry per term: type, weight and when it is on.</param>
/// <param name="Optimizer">Optimizer type and its settings.</param>
/// <param name="LearningRate">Base learning rate.</param>
/// <param name="Schedule">Learning-rate schedule in a few words.</param>
/// <param name="Seed">train.seed.</param>
/// <param name="Device">The device it ran on (<c>cpu</c>, <c>cuda:0</c>), with the CPU thread count.</param>
/// <param name="Precision">Arithmetic of the training step (<c>fp32</c>).</param>
/// <param name="Date">When the report was written (UTC).</param>
/// <param name="SegVersion">Seg's version (with its source revision where the build recorded one).</param>
/// <param name="Checkpoint">The checkpoint whose scores these are.</param>
/// <param name="Warnings">Problems with the run's setup that the numbers do not show (empty: none).</param>
public sealed record RunInfo(
    string Dataset, string Model, IReadOnlyList<string> LossTerms, string Optimizer, double LearningRate, string Schedule,
    int Seed, string Device, string Precision, DateTimeOffset Date, string SegVersion, string? Checkpoint, IReadOnlyList<string> Warnings)
{
    /// <summary>The run described by its config; <paramref name="splits"/> says which images (e.g. "2000 train / 200 val
    /// images"), <paramref name="device"/> where it ran and <paramref name="threads"/> with how many CPU threads.</summary>
    public static RunInfo From(TrainConfig config, string splits, torch.Device device, int threads, string? checkpoint,
        IReadOnlyList<string>? warnings = null, string precision = "fp32")
    {
        var d = config.Data;
        var m = config.Model;
        var o = config.Optimizer;
        var s = config.Schedule;
        var model = m.Name + (m.Name == "unet" ? $" (depth {m.UnetDepth}, width {m.UnetBaseWidth}{(m.UnetBilinear ? ", bilinear" : "")})"
                : m.EffectiveOutputStride is { } stride ? $" (output stride {stride})" : "")
            + (m.Head.Type != "linear" ? $", {m.Head.Type} head{(m.Head.Margin != "none" ? $" with {m.Head.Margin} margin" : "")}" : "")
            + (m.Pretrained is { } p ? $", from {p}" : "");
        var optimizer = o.Type + (o.Type == "sgd" ? $" (momentum {N(o.Momentum)}{(o.Nesterov ? ", Nesterov" : "")}" : $" (betas {N(o.Betas[0])}, {N(o.Betas[1])}")
            + $", weight decay {N(o.WeightDecay)})";
        var schedule = s.Type + (s.Type == "poly" ? $" (power {N(s.Power)})" : "") + (s.WarmupIters > 0 ? $", {s.WarmupIters} warm-up iterations" : "");
        var terms = config.Loss.Select(t => $"{t.Name ?? t.Type} × {N(t.Weight)}"
            + (t.Name is not null && t.Name != t.Type ? $" ({t.Type})" : "")
            + (t.Start > 0 || t.End < 1 ? $", on from {Pc(t.Start)} to {Pc(t.End)} of training" : "")).ToList();
        return new RunInfo($"{d.Type}{(d.Root is { } root ? $" at {root}" : "")}, {splits}", model, terms, optimizer, o.Lr, schedule,
            config.Train.Seed, $"{device.ToString().ToLowerInvariant()}, {threads} CPU thread{(threads == 1 ? "" : "s")}", precision, DateTimeOffset.UtcNow, Version, checkpoint, warnings ?? []);
    }

    /// <summary>Seg's version: Seg.Core's informational version (its source revision shortened to 12 hex digits).</summary>
    public static string Version
    {
        get
        {
            var v = typeof(SegRuntime).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
                    ?? typeof(SegRuntime).Assembly.GetName().Version?.ToString() ?? "unknown";
            var plus = v.IndexOf('+');
            return plus >= 0 && v.Length > plus + 13 ? v[..(plus + 13)] : v;
        }
    }

    static string N(double v) => v.ToString("G4", CultureInfo.InvariantCulture);
    static string Pc(double fraction) => (100 * fraction).ToString("0.#", CultureInfo.InvariantCulture) + " %";

    /// <summary>The rows of the report's "Run" table.</summary>
    public IEnumerable<(string Key, string Value)> Rows()
    {
        yield return ("dataset", Dataset);
        yield return ("model", Model);
        yield return ("loss", string.Join("; ", LossTerms));
        yield return ("optimizer", Optimizer);
        yield return ("learning rate", $"{N(LearningRate)}, {Schedule}");
        yield return ("seed", Seed.ToString(CultureInfo.InvariantCulture));
        yield return ("device", Device);
        yield return ("precision", Precision);
        yield return ("date", Date.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture));
        yield return ("Seg version", SegVersion);
        if (Checkpoint is not null) yield return ("checkpoint", Checkpoint);
    }

    /// <summary>The <c>"run"</c> object of <c>metrics.json</c>.</summary>
    public JsonObject ToJson() => new()
    {
        ["dataset"] = Dataset,
        ["model"] = Model,
        ["loss"] = new JsonArray(LossTerms.Select(t => (JsonNode?)JsonValue.Create(t)).ToArray()),
        ["optimizer"] = Optimizer,
        ["lr"] = LearningRate,
        ["schedule"] = Schedule,
        ["seed"] = Seed,
        ["device"] = Device,
        ["precision"] = Precision,
        ["date"] = Date.ToString("o", CultureInfo.InvariantCulture),
        ["seg_version"] = SegVersion,
        ["checkpoint"] = Checkpoint,
        ["warnings"] = new JsonArray(Warnings.Select(w => (JsonNode?)JsonValue.Create(w)).ToArray()),
    };
}
