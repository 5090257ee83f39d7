using System.Text.Json.Nodes;
using Seg.Core.Losses;
using Seg.Core.Losses.MetricLosses;
using static TorchSharp.torch;

namespace Seg.Tests.Losses;

/// <summary>
/// The metric losses against values computed by PyTorch 1.13 (Debian's python3-torch) under the official JDTLoss
/// semantics: Fixtures/losses/make_jdt_fixtures.py wrote jdt_expected.json; no Python runs here.
/// </summary>
public class MetricLossPyTorchTests
{
    public MetricLossPyTorchTests() => TensorData.Init();

    public static TheoryData<int> Cases() => new() { 0, 1, 2, 3, 4, 5, 6, 7 };

    static readonly JsonNode Fixture = JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "losses", "jdt_expected.json")))!;

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesOfficialSemanticsInPyTorch(int index)
    {
        var c = Fixture["cases"]![index]!;
        var s = c["settings"]!;
        var shape = c["shape"]!.AsArray().Select(v => (long)v!).ToArray();
        bool hard = (bool)c["hard"]!;
        var logits = tensor(c["logits"]!.AsArray().Select(v => (double)v!).ToArray()).reshape(shape);
        var labels = hard
            ? tensor(c["labels"]!.AsArray().Select(v => (long)(double)v!).ToArray()).reshape(shape[0], shape[2], shape[3])
            : tensor(c["labels"]!.AsArray().Select(v => (double)v!).ToArray()).reshape(shape);
        var weights = s["weights"] is JsonArray w ? w.Select(v => (double)v!).ToArray() : null;
        var value = MetricLoss.Tversky(logits, labels, (double)s["alpha"]!, (double)s["beta"]!, (double)s["gamma"]!,
            (double)s["w_d"]!, (double)s["w_i"]!, (double)s["w_c"]!, (double)s["smooth"]!, (bool)s["log_loss"]!, weights,
            (string)s["mode"]! == "all" ? ClassSelection.All : ClassSelection.Present, (double)s["threshold"]!, ignoreIndex: 255);
        Assert.Equal((double)c["expected"]!, value.item<double>(), 10);
    }
}
