using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses;

/// <summary>
/// A weighted sum of named loss terms whose weights follow a schedule over training progress, e.g. cross-entropy
/// alone, then cross-entropy + Lovász-Softmax from 50 % of training (the fine-tuning recipe of Berman et al.,
/// CVPR 2018). The trainer sets <see cref="Progress"/> each step; inactive terms are not computed; the unweighted
/// value of every active term of the last forward is in <see cref="LastValues"/> for logging.
/// </summary>
public sealed class CompositeLoss : nn.Module<Tensor, Tensor, Tensor>
{
    readonly LossTerm[] terms;
    Dictionary<string, double> lastValues = new();
    double progress;

    /// <summary>Creates the composite from its terms; they are registered as submodules under their names.</summary>
    /// <exception cref="ArgumentException">No terms, an empty, dotted or repeated name, a non-finite weight or a
    /// schedule outside 0 ≤ Start &lt; End ≤ 1.</exception>
    public CompositeLoss(IEnumerable<LossTerm> terms, string name = "composite") : base(name)
    {
        ArgumentNullException.ThrowIfNull(terms);
        this.terms = terms.ToArray();
        if (this.terms.Length == 0)
            throw new ArgumentException("CompositeLoss needs at least one term.", nameof(terms));
        var seen = new HashSet<string>();
        foreach (var term in this.terms)
        {
            ArgumentNullException.ThrowIfNull(term);
            ArgumentNullException.ThrowIfNull(term.Loss);
            if (string.IsNullOrWhiteSpace(term.Name) || term.Name.Contains('.'))
                throw new ArgumentException($"loss term name '{term.Name}' must be non-empty and contain no '.'.", nameof(terms));
            if (!seen.Add(term.Name))
                throw new ArgumentException($"loss term name '{term.Name}' is used twice; term names must be unique.", nameof(terms));
            if (!double.IsFinite(term.Weight))
                throw new ArgumentException($"loss term '{term.Name}' has a non-finite weight {term.Weight}.", nameof(terms));
            if (!(term.Start >= 0 && term.Start < term.End && term.End <= 1))
                throw new ArgumentException($"loss term '{term.Name}' has schedule [{term.Start}, {term.End}); need 0 <= Start < End <= 1.", nameof(terms));
            register_module(term.Name, term.Loss);
        }
    }

    /// <summary>The terms, in order.</summary>
    public IReadOnlyList<LossTerm> Terms => terms;

    /// <summary>Training progress in [0,1], set by the trainer each step.</summary>
    public double Progress
    {
        get => progress;
        set
        {
            if (!(value >= 0 && value <= 1))
                throw new ArgumentOutOfRangeException(nameof(value), value, "progress must lie in [0,1].");
            progress = value;
        }
    }

    /// <summary>The term's weight at this progress: Weight when Start ≤ progress &lt; End (End = 1 includes 1), else 0.</summary>
    public static double WeightAt(LossTerm term, double progress)
    {
        ArgumentNullException.ThrowIfNull(term);
        bool active = progress >= term.Start && (progress < term.End || (term.End == 1.0 && progress == 1.0));
        return active ? term.Weight : 0.0;
    }

    /// <summary>Unweighted value of each active term in the last forward (inactive terms absent).</summary>
    public IReadOnlyDictionary<string, double> LastValues => lastValues;

    /// <inheritdoc/>
    public override Tensor forward(Tensor logits, Tensor labels)
    {
        using var scope = NewDisposeScope();
        var values = new Dictionary<string, double>();
        Tensor? total = null;
        foreach (var term in terms)
        {
            double weight = WeightAt(term, progress);
            if (weight == 0) continue;
            var value = term.Loss.call(logits, labels);
            values[term.Name] = value.detach().to(ScalarType.Float64).cpu().item<double>();
            var weighted = value * weight;
            total = total is null ? weighted : total + weighted;
        }
        lastValues = values;
        // No active term: a zero that still backpropagates (to zero gradients) keeps the training step uniform.
        total ??= logits.sum() * 0;
        return total.MoveToOuterDisposeScope();
    }
}
