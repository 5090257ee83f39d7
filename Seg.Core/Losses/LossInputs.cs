using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses;

/// <summary>Shape and dtype checks shared by the losses, with messages that name the tensors at fault.</summary>
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

    /// <summary>Throws when a non-ignored label lies outside [0, classCount).</summary>
    public static void RequireLabelsInRange(Tensor labels, Tensor valid, long classCount, string what)
    {
        if (labels.numel() == 0) return;
        using var scope = NewDisposeScope();
        var bad = (labels.lt(0) | labels.ge(classCount)) & valid;
        if (bad.any().item<bool>())
        {
            var first = labels.masked_select(bad)[0].item<long>();
            throw new ArgumentException(
                $"labels {Shape(labels)} hold {first}, outside the {classCount} classes of {what} (and not the ignore index).", "labels");
        }
    }
}
