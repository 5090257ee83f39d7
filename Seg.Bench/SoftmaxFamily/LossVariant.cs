using Seg.Core.Losses;
using Seg.Core.Losses.MarginSoftmax;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Seg.Bench.SoftmaxFamily;

/// <summary>
/// One loss under comparison on top of the embedding: its trainable module, the training loss, the inference
/// logits (no margin) and an optional step after the optimizer (Center loss's center update).
/// </summary>
internal sealed class LossVariant(
    string name,
    string settings,
    nn.Module module,
    Func<Tensor, Tensor, Tensor> loss,
    Func<Tensor, Tensor> logits,
    Action<Tensor, Tensor>? afterStep = null) : IDisposable
{
    public string Name { get; } = name;
    public string Settings { get; } = settings;
    public nn.Module Module { get; } = module;
    public Tensor Loss(Tensor embedding, Tensor labels) => loss(embedding, labels);
    public Tensor Logits(Tensor embedding) => logits(embedding);
    public void AfterStep(Tensor embedding, Tensor labels) => afterStep?.Invoke(embedding, labels);
    public void Dispose() => Module.Dispose();

    public static readonly string[] Names = ["softmax", "am-softmax", "arcface", "l-softmax", "softmax+center"];

    /// <summary>The settings used in the table of docs/experiments.md: s = 30 for both cosine losses (10 classes, short runs).</summary>
    public static LossVariant Create(string name, long dim, int classes) => name switch
    {
        "softmax" => Softmax(name, "linear classifier + CE", dim, classes, centerWeight: 0),
        "softmax+center" => Softmax(name, "CE + 0.01·Center (α = 0.5)", dim, classes, centerWeight: 0.01),
        "am-softmax" => Cosine(name, "s = 30, m = 0.35", new AmSoftmaxLoss(dim, classes, scale: 30, margin: 0.35)),
        "arcface" => Cosine(name, "s = 30, m = 0.5", new ArcFaceLoss(dim, classes, scale: 30, margin: 0.5)),
        "l-softmax" => LargeMargin(name, dim, classes),
        _ => throw new ArgumentException($"unknown loss '{name}'; known: {string.Join(", ", Names)}", nameof(name)),
    };

    static LossVariant Softmax(string name, string settings, long dim, int classes, double centerWeight)
    {
        var fc = nn.Linear(dim, classes);
        if (centerWeight == 0)
            return new LossVariant(name, settings, fc,
                (e, y) => nn.functional.cross_entropy(fc.forward(e), y), fc.forward);
        var center = new CenterLoss(dim, classes, alpha: 0.5);
        var both = nn.ModuleDict<nn.Module>(("fc", fc), ("center", center));
        return new LossVariant(name, settings, both,
            (e, y) => nn.functional.cross_entropy(fc.forward(e), y) + centerWeight * center.forward(e, y),
            fc.forward,
            (e, y) => center.UpdateCenters(e, y));
    }

    static LossVariant Cosine(string name, string settings, CosineMarginSoftmax loss) =>
        new(name, settings, loss, loss.forward, e => loss.Logits(e, null));

    static LossVariant LargeMargin(string name, long dim, int classes)
    {
        // The official schedule (γ = 2.5e-5, power 35) keeps λ in the hundreds for the 938 steps of this run, i.e.
        // plain softmax (λ ≈ 444 at step 938); this faster one reaches λ = 5 after ~660 steps.
        var annealing = new LargeMarginAnnealing(Base: 1000, Gamma: 0.02, Power: 2, LambdaMin: 5);
        var loss = new LargeMarginSoftmaxLoss(dim, classes, margin: 4) { Annealing = annealing };
        return new LossVariant(name, "m = 4, λ = max(5, 1000·(1 + 0.02·it)^−2)", loss, loss.forward,
            e => loss.Logits(e, null));
    }
}
