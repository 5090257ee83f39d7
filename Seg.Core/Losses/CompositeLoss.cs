using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses;

/// <summary>
/// A weighted sum of named loss terms whose weights follow a schedule over training progress, e.g. cross-entropy
/// alone, then cross-entropy + Lovász-Softmax from 50 % of training (the fine-tuning recipe of Berman et al.,
/// CVPR 2018). The schedule needs the training progress: pass it with every call,
/// <see cref="call(Tensor, Tensor, double)"/> (what the trainer does in effect), or set <see cref="Progress"/> before
/// the calls of each step. A composite with a scheduled term (Start &gt; 0 or End &lt; 1) refuses to run before any
/// progress was given, instead of silently leaving that term off. Inactive terms are not computed; the unweighted
/// value of every active term of the last forward is in <see cref="LastValues"/> for logging. The forward reads
/// nothing back from the device: the values are read when <see cref="LastValues"/> is first asked for one.
/// </summary>
public sealed class CompositeLoss : nn.Module<Tensor, Tensor, Tensor>
{
    readonly LossTerm[] terms;
    TermValues lastValues = TermValues.None;
    double? progress;   // null until given: see Progress

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

    /// <summary>Training progress in [0,1] (0 until given), which the terms' schedules read. Set it before the
    /// calls of each training step, or pass it with <see cref="call(Tensor, Tensor, double)"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A value outside [0,1] (or NaN).</exception>
    public double Progress
    {
        get => progress ?? 0;
        set
        {
            if (!(value >= 0 && value <= 1))
                throw new ArgumentOutOfRangeException(nameof(value), value, "progress must lie in [0,1].");
            progress = value;
        }
    }

    /// <summary>The loss at training progress <paramref name="progress"/> in [0,1]: sets <see cref="Progress"/>,
    /// then runs the module as <c>call(logits, labels)</c> does.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="progress"/> outside [0,1].</exception>
    public Tensor call(Tensor logits, Tensor labels, double progress)
    {
        Progress = progress;
        return call(logits, labels);
    }

    /// <summary>The term's weight at this progress: Weight when Start ≤ progress &lt; End (End = 1 includes 1), else 0.</summary>
    public static double WeightAt(LossTerm term, double progress)
    {
        ArgumentNullException.ThrowIfNull(term);
        bool active = progress >= term.Start && (progress < term.End || (term.End == 1.0 && progress == 1.0));
        return active ? term.Weight : 0.0;
    }

    /// <summary>Unweighted value of each active term in the last forward (inactive terms absent). The values are
    /// read from the device when the first one is asked for (one host synchronisation for all of them); a later
    /// forward does not change a dictionary already taken.</summary>
    public IReadOnlyDictionary<string, double> LastValues => lastValues;

    /// <inheritdoc/>
    /// <exception cref="InvalidOperationException">A term has a schedule and no progress was ever given.</exception>
    public override Tensor forward(Tensor logits, Tensor labels)
    {
        if (progress is null && terms.FirstOrDefault(t => t.Start > 0 || t.End < 1) is { } scheduled)
            throw new InvalidOperationException(
                $"CompositeLoss: term '{scheduled.Name}' runs from {scheduled.Start} to {scheduled.End} of training, but no progress " +
                "was given; call(logits, labels, progress) or set Progress before each step's calls, or the term never turns on.");
        var at = Progress;
        using var scope = NewDisposeScope();
        var names = new List<string>();
        var values = new List<Tensor>();
        Tensor? total = null;
        foreach (var term in terms)
        {
            double weight = WeightAt(term, at);
            if (weight == 0) continue;
            var value = term.Loss.call(logits, labels);
            names.Add(term.Name);
            values.Add(value.detach().to(ScalarType.Float64).view(1));
            var weighted = value * weight;
            total = total is null ? weighted : total + weighted;
        }
        lastValues = names.Count == 0 ? TermValues.None : new TermValues(names, cat(values.ToArray()));
        // No active term: a zero that still backpropagates (to zero gradients) keeps the training step uniform.
        total ??= logits.sum() * 0;
        return total.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The term values of one forward, kept on the device as one tensor until a value is first asked for, then read
/// in one copy to the host. A snapshot nobody reads is freed with its tensor by the garbage collector.
/// </summary>
sealed class TermValues : IReadOnlyDictionary<string, double>
{
    public static readonly TermValues None = new([], null);

    readonly string[] names;
    readonly object gate = new();
    Tensor? onDevice;
    double[]? values;

    /// <summary>Takes <paramref name="values"/> (one float64 value per name) out of the current dispose scope.</summary>
    public TermValues(IReadOnlyList<string> names, Tensor? values)
    {
        this.names = names.ToArray();
        onDevice = values?.DetachFromDisposeScope();
        if (values is null) this.values = [];
    }

    double[] Values
    {
        get
        {
            lock (gate)
            {
                if (values is null)
                {
                    using (var host = onDevice!.cpu()) values = host.data<double>().ToArray();
                    onDevice.Dispose();
                    onDevice = null;
                }
                return values;
            }
        }
    }

    public double this[string key] => TryGetValue(key, out var value) ? value : throw new KeyNotFoundException($"no active loss term '{key}' in the last forward.");
    public IEnumerable<string> Keys => names;
    IEnumerable<double> IReadOnlyDictionary<string, double>.Values => Values;
    public int Count => names.Length;
    public bool ContainsKey(string key) => Array.IndexOf(names, key) >= 0;

    public bool TryGetValue(string key, out double value)
    {
        int i = Array.IndexOf(names, key);
        value = i >= 0 ? Values[i] : 0;
        return i >= 0;
    }

    public IEnumerator<KeyValuePair<string, double>> GetEnumerator()
    {
        var read = Values;
        for (int i = 0; i < names.Length; i++) yield return new(names[i], read[i]);
    }

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}
