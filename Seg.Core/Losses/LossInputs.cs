using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses;

/// <summary>Shape, dtype and label checks shared by all losses, with messages that name the loss, the tensors and their shapes.</summary>
internal static class LossInputs
{
    /// <summary>A shape as "[2,3,4,4]".</summary>
    public static string Shape(Tensor t) => "[" + string.Join(",", t.shape) + "]";

    /// <summary>Labels as int64; floating or boolean labels are rejected because class ids and the ignore index are integers.</summary>
    public static Tensor IntegerLabels(Tensor labels)
    {
        if (labels.dtype == ScalarType.Int64) return labels;
        if (labels.dtype is ScalarType.Int32 or ScalarType.Int16 or ScalarType.Int8 or ScalarType.Byte)
            return labels.to(ScalarType.Int64);
        throw new ArgumentException($"labels {Shape(labels)} must hold integer class ids (int64), not {labels.dtype}.", nameof(labels));
    }

    /// <summary>Rejects non-floating scores (e.g. labels passed where probabilities belong).</summary>
    public static void RequireFloating(Tensor t, string name)
    {
        if (!t.is_floating_point())
            throw new ArgumentException($"{name} {Shape(t)} must be a floating-point tensor, not {t.dtype}.", name);
    }

    /// <summary>
    /// Where every loss starts, so that each computes in float32 whatever precision its input arrives in (as
    /// PyTorch's AMP recipe computes losses): a bfloat16 or float16 <paramref name="input"/> is replaced by its float32
    /// copy (float32 and float64 stay), and autocast is off on its device while the returned scope lives (null when
    /// it was off), so that the loss's matrix products run in float32 too and the loss comes out float32. The
    /// gradient flows back through the cast in the input's own dtype. Use as <c>using var _ = FullPrecision(ref x);</c>.
    /// </summary>
    public static IDisposable? FullPrecision(ref Tensor input)
    {
        input = Float32IfReduced(input);
        return Seg.Core.Amp.Autocast.SuspendIfEnabled(input.device_type);
    }

    /// <summary><see cref="FullPrecision(ref Tensor)"/> for losses with two floating inputs (student and teacher
    /// logits, or logits and soft targets).</summary>
    public static IDisposable? FullPrecision(ref Tensor first, ref Tensor second)
    {
        second = Float32IfReduced(second);
        return FullPrecision(ref first);
    }

    static Tensor Float32IfReduced(Tensor t) => t.dtype is ScalarType.BFloat16 or ScalarType.Float16 ? t.to(ScalarType.Float32) : t;

    /// <summary>The dtype the losses compute in: float64 stays float64, every other float (float16, bfloat16,
    /// float32) is computed in float32 so that sums over many pixels keep their precision.</summary>
    public static ScalarType WorkType(Tensor t) => t.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;

    /// <summary>
    /// Multi-class module input as ([B,C,H,W] logits, [B,H,W] labels): accepts [B,C,H,W] + [B,H,W] and
    /// [N,C] + [N] (seen as one image of N×1 pixels).
    /// </summary>
    public static (Tensor Logits, Tensor Labels) MultiClass(Tensor logits, Tensor labels)
    {
        RequireFloating(logits, "logits");
        RequireSameDevice(logits, labels);
        var l = logits.shape;
        var y = labels.shape;
        if (l.Length == 4 && y.Length == 3 && y[0] == l[0] && y[1] == l[2] && y[2] == l[3])
            return (logits, IntegerLabels(labels));
        if (l.Length == 2 && y.Length == 1 && y[0] == l[0])
            return (logits.t().unsqueeze(0).unsqueeze(-1), IntegerLabels(labels).view(1, -1, 1));
        throw new ArgumentException(
            $"labels {Shape(labels)} do not match logits {Shape(logits)}; expected logits [B,C,H,W] with labels [B,H,W], or logits [N,C] with labels [N].");
    }

    /// <summary>
    /// Binary module input as ([B,H,W] scores, [B,H,W] labels): accepts [B,H,W] or [B,1,H,W] with [B,H,W] labels,
    /// and [N] or [N,1] with [N] labels.
    /// </summary>
    public static (Tensor Logits, Tensor Labels) Binary(Tensor logits, Tensor labels)
    {
        RequireFloating(logits, "logits");
        RequireSameDevice(logits, labels);
        var l = logits.shape;
        var y = labels.shape;
        if (y.Length == 3 && l.Length == 4 && l[1] == 1 && l[0] == y[0] && l[2] == y[1] && l[3] == y[2])
            return (logits.squeeze(1), IntegerLabels(labels));
        if (y.Length == 3 && l.SequenceEqual(y))
            return (logits, IntegerLabels(labels));
        if (y.Length == 1 && (l.Length == 1 || (l.Length == 2 && l[1] == 1)) && l[0] == y[0])
            return (logits.reshape(1, -1, 1), IntegerLabels(labels).view(1, -1, 1));
        throw new ArgumentException(
            $"labels {Shape(labels)} do not match logits {Shape(logits)}; expected logits [B,H,W] or [B,1,H,W] with labels [B,H,W], or logits [N] or [N,1] with labels [N].");
    }

    /// <summary>Non-ignored pixels (all true when <paramref name="ignoreIndex"/> is null).</summary>
    public static Tensor ValidMask(Tensor labels, long? ignoreIndex) =>
        ignoreIndex is long ignore ? labels.ne(ignore) : ones_like(labels, ScalarType.Bool);

    /// <summary>The non-ignored pixels of <paramref name="labels"/> whose labels are classes in
    /// [0, <paramref name="classCount"/>): a bad label throws at once on the CPU, and is left out and reported
    /// later by <see cref="LabelChecks.ThrowIfAnyFailed"/> on other devices (no host synchronisation).</summary>
    /// <exception cref="ArgumentException">Also when <paramref name="ignoreIndex"/> is a class id (<see cref="IgnoreIndexRule.Check"/>).</exception>
    public static Tensor CheckedValidMask(Tensor labels, long? ignoreIndex, long classCount, string what)
    {
        IgnoreIndexRule.Check(ignoreIndex, classCount);
        return LabelChecks.Check(labels, ValidMask(labels, ignoreIndex), classCount, what);
    }


    /// <summary>How often each value in [0, <paramref name="length"/>) occurs in the int64
    /// <paramref name="values"/>, counted on their device by a scatter-add into a tensor of that length. (ATen's
    /// bincount reads the largest value to the host to size its result: a device synchronisation.)</summary>
    public static Tensor Bincount(Tensor values, long length)
    {
        var flat = values.flatten();
        return zeros(length, ScalarType.Int64, device: values.device).scatter_add_(0, flat, ones_like(flat));
    }

    /// <summary>|d| computed as d·sign(d) with the sign held constant: abs's values and its gradient (0 at d = 0, as
    /// the reference losses' <c>abs</c> gives), and unlike <c>abs</c> it has a meta kernel in libtorch 2.10, so the
    /// no-synchronisation tests can run the losses on the meta device.</summary>
    internal static Tensor Magnitude(Tensor difference) => difference * difference.detach().sign();

    /// <summary>Mean of per-pixel values over the pixels where <paramref name="mask"/> is 1; 0 (attached to the
    /// graph) when there are none, where a plain mean would be 0/0.</summary>
    public static Tensor MaskedMean(Tensor perPixel, Tensor mask) => (perPixel * mask).sum() / mask.sum().clamp_min(1);

    // Checks used by the softmax-family losses (features/embeddings and labels).

    /// <summary>Features must be embeddings [N,D] or pixel embeddings [B,D,H,W] with D = <paramref name="dim"/>.</summary>
    internal static void CheckEmbedding(string owner, Tensor features, long dim, string name = "features")
    {
        var ok = (features.dim() == 2 || features.dim() == 4) && features.shape[1] == dim;
        if (!ok)
            throw new ArgumentException(
                $"{owner}: {name} must be [N,{dim}] embeddings or [B,{dim},H,W] pixel embeddings; got {Shape(features)}.",
                name);
    }

    /// <summary>
    /// Labels must have the shape of <paramref name="reference"/> without its dimension 1 ([N] for [N,·],
    /// [B,H,W] for [B,·,H,W]) and an integer type. Returns them as int64.
    /// </summary>
    internal static Tensor CheckLabels(string owner, Tensor reference, Tensor labels, string referenceName)
    {
        var expected = reference.shape.Where((_, i) => i != 1).ToArray();
        if (!labels.shape.SequenceEqual(expected))
            throw new ArgumentException(
                $"{owner}: labels must be [{string.Join(",", expected)}] to match {referenceName} {Shape(reference)}; " +
                $"got {Shape(labels)}.", "labels");
        if (labels.is_floating_point() || labels.is_complex() || labels.dtype == ScalarType.Bool)
            throw new ArgumentException($"{owner}: labels must be an integer tensor; got {labels.dtype}.", "labels");
        return labels.dtype == ScalarType.Int64 ? labels.alias() : labels.to_type(ScalarType.Int64);
    }

    /// <summary>Every label must be a class index in [0, classes) or the ignore index.</summary>
    internal static void CheckLabelRange(string owner, Tensor labels, long classes, long ignoreIndex)
    {
        IgnoreIndexRule.Check(ignoreIndex, classes);
        using var scope = NewDisposeScope();
        LabelChecks.CheckNow(labels, ValidMask(labels, ignoreIndex), classes, owner);
    }

    /// <summary>Labels must be on the logits' device (libtorch's own error names neither).</summary>
    internal static void RequireSameDevice(Tensor logits, Tensor labels)
    {
        if (logits.device_type != labels.device_type || logits.device_index != labels.device_index)
            throw new ArgumentException($"labels are on {labels.device} but logits on {logits.device}; move both to one device.", nameof(labels));
    }

    /// <summary>The most classes a loss takes: beyond it, a one-hot or a per-class table would not fit any device.</summary>
    internal const long MaxClasses = 1L << 20;

    /// <summary>The most elements of a loss's own [classes, features] parameter table (8 GiB of float32).</summary>
    internal const long MaxTableElements = 1L << 31;

    /// <summary>Refuses, before allocating, a class count or a [classes, features] table that no device holds.</summary>
    internal static void CheckTableSize(string owner, long features, long classes)
    {
        if (classes > MaxClasses)
            throw new ArgumentOutOfRangeException(nameof(classes), classes, $"{owner}: classes must be at most {MaxClasses}.");
        if (features > MaxTableElements / Math.Max(1, classes))
            throw new ArgumentOutOfRangeException(nameof(features), features,
                $"{owner}: a table of {classes} classes × {features} features exceeds {MaxTableElements} elements.");
    }

    /// <summary>Both tensors must share a dtype (the module's parameters follow <c>.to(dtype)</c>).</summary>
    internal static void CheckDtype(string owner, Tensor features, Tensor parameter, string parameterName)
    {
        if (features.dtype != parameter.dtype)
            throw new ArgumentException(
                $"{owner}: features are {features.dtype} but {parameterName} is {parameter.dtype}; " +
                $"convert the module with .to({features.dtype}) or the features with .to({parameter.dtype}).",
                "features");
    }

    /// <summary>
    /// Mean cross-entropy over the non-ignored entries; zero (still attached to the graph) when every entry is
    /// ignored, where libtorch's mean would be NaN.
    /// </summary>
    internal static Tensor MeanCrossEntropy(Tensor logits, Tensor labels, long ignoreIndex)
    {
        if (!labels.ne(ignoreIndex).any().item<bool>()) return logits.sum() * 0.0;
        return nn.functional.cross_entropy(logits, labels, ignore_index: ignoreIndex);
    }

    /// <summary>
    /// Mean of row losses over eligible rows; in per-image mode ([B,K] rows) the mean per image, then over images
    /// with an eligible row. Nothing eligible gives 0 with a zero gradient, never 0/0.
    /// </summary>
    public static Tensor MeanOverEligible(Tensor rowLoss, Tensor eligible, bool perImage)
    {
        var mask = eligible.to(rowLoss.dtype);
        if (!perImage)
            return MaskedMean(rowLoss, mask);
        var rowsPerImage = mask.sum(-1);
        var imageLoss = (rowLoss * mask).sum(-1) / rowsPerImage.clamp_min(1);
        var imageMask = rowsPerImage.gt(0).to(rowLoss.dtype);
        return MaskedMean(imageLoss, imageMask);
    }
}
