using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses.MetricLosses;

/// <summary>
/// The Jaccard metric loss (Z. Wang, X. Ning, M. B. Blaschko, "Jaccard Metric Losses: Optimizing the Jaccard Index
/// with Soft Labels", NeurIPS 2023), the Dice semimetric loss (Z. Wang et al., "Dice Semimetric Losses: Optimizing the
/// Dice Score with Soft Labels", MICCAI 2023) and the Tversky loss, as one computation; the aggregations follow
/// Z. Wang et al., "Revisiting Evaluation Metrics for Semantic Segmentation", NeurIPS 2023.
/// <para>
/// With p = softmax(logits) and labels y (one-hot of hard labels, or soft labels), both zeroed on ignored pixels,
/// per class over a set of pixels: tp = (‖p‖₁ + ‖y‖₁ − ‖p − y‖₁)/2, fp = ‖p‖₁ − tp, fn = ‖y‖₁ − tp,
/// T = (tp + s)/(tp + α·fp + β·fn + s) and loss = w_c·(1 − T)^γ (or w_c·(−log T)^γ). Jaccard is α = β = 1, Dice
/// α = β = ½. On hard labels tp = Σ p·y, so this is the soft Jaccard (Dice) loss; on soft labels it is 0 exactly
/// when p = y. Three aggregations, summed with their weights: per dataset (counts summed over the batch, the mean
/// over active classes; targets mIoU^D), per image (the mean over each image's active classes, then over images
/// with one; mIoU^I) and per class (the mean over the images where the class is active, then over classes; mIoU^C).
/// A class is active in a set when its label exceeds the threshold somewhere (Present), or everywhere the set has a
/// labelled pixel (All). No active class gives 0 with a zero gradient. No step reads a value back to the host, except
/// the label check on CPU tensors (see <see cref="LossInputs.CheckedValidMask"/>).
/// </para>
/// <para>
/// Labels: hard [B,H,W] integer class ids (pixels equal to the ignore index are left out), or soft [B,C,H,W]
/// probabilities (e.g. <see cref="SoftLabels.BoundarySmoothing"/> or a teacher's softmax), where an all-zero vector
/// marks a pixel to leave out. Logits [N,C] with labels [N] or [N,C] are one image of N pixels.
/// </para>
/// </summary>
public static class MetricLoss
{
    /// <summary>Jaccard metric loss: <see cref="Tversky"/> with α = β = 1.</summary>
    public static Tensor Jaccard(Tensor logits, Tensor labels, double perDataset = 1, double perImage = 0, double perClass = 0,
                                 double smooth = 1, double gamma = 1, bool logLoss = false, double[]? classWeights = null,
                                 ClassSelection? classes = null, double threshold = 0.01, long? ignoreIndex = 255) =>
        Compute(logits, labels, new MetricLossSettings(1, 1, gamma, perDataset, perImage, perClass, smooth, logLoss,
                                                       classWeights, classes, threshold, ignoreIndex));

    /// <summary>Dice semimetric loss: <see cref="Tversky"/> with α = β = ½.</summary>
    public static Tensor Dice(Tensor logits, Tensor labels, double perDataset = 1, double perImage = 0, double perClass = 0,
                              double smooth = 1, double gamma = 1, bool logLoss = false, double[]? classWeights = null,
                              ClassSelection? classes = null, double threshold = 0.01, long? ignoreIndex = 255) =>
        Compute(logits, labels, new MetricLossSettings(0.5, 0.5, gamma, perDataset, perImage, perClass, smooth, logLoss,
                                                       classWeights, classes, threshold, ignoreIndex));

    /// <summary>Tversky loss (the class documentation gives the formula).</summary>
    /// <param name="logits">[B,C,H,W] (or [N,C]) logits; softmax is applied here.</param>
    /// <param name="labels">Hard [B,H,W] (or [N]) class ids, or soft [B,C,H,W] (or [N,C]) probabilities.</param>
    /// <param name="alpha">Weight α ≥ 0 of false positives.</param>
    /// <param name="beta">Weight β ≥ 0 of false negatives.</param>
    /// <param name="gamma">Focal exponent γ ≥ 1.</param>
    /// <param name="perDataset">Weight of the per-dataset aggregation.</param>
    /// <param name="perImage">Weight of the per-image aggregation.</param>
    /// <param name="perClass">Weight of the per-class-over-images aggregation.</param>
    /// <param name="smooth">Additive smoothing s &gt; 0.</param>
    /// <param name="logLoss">−log T instead of 1 − T.</param>
    /// <param name="classWeights">One factor per class, applied before the mean over active classes; null for 1. The
    /// modules keep them on the device between calls; this form copies them each call.</param>
    /// <param name="classes">Present, All or Only(ids); null: Present for hard labels, All for soft labels.</param>
    /// <param name="threshold">Present: a class is active where its label exceeds this (default 0.01).</param>
    /// <param name="ignoreIndex">Ignored label of hard labels, or null.</param>
    /// <returns>A scalar of the dtype of <paramref name="logits"/>.</returns>
    /// <exception cref="ArgumentException">Shapes that do not match (the message names both), a bad parameter,
    /// labels outside the classes (CPU tensors), soft labels outside [0,1] (CPU tensors).</exception>
    public static Tensor Tversky(Tensor logits, Tensor labels, double alpha = 0.5, double beta = 0.5, double gamma = 1,
                                 double perDataset = 1, double perImage = 0, double perClass = 0, double smooth = 1,
                                 bool logLoss = false, double[]? classWeights = null, ClassSelection? classes = null,
                                 double threshold = 0.01, long? ignoreIndex = 255) =>
        Compute(logits, labels, new MetricLossSettings(alpha, beta, gamma, perDataset, perImage, perClass, smooth, logLoss,
                                                       classWeights, classes, threshold, ignoreIndex));

    /// <summary>The loss with validated <paramref name="settings"/>; the modules call this.</summary>
    public static Tensor Compute(Tensor logits, Tensor labels, MetricLossSettings settings)
    {
        using var precision = LossInputs.FullPrecision(ref logits);
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(settings);
        if (logits.NumberOfElements == 0)
            throw new ArgumentException($"logits {LossInputs.Shape(logits)} hold no values (a zero batch, class count, height or width): a metric loss needs at least one pixel.", nameof(logits));
        using var scope = NewDisposeScope();
        var (p, y, valid, soft) = Inputs(logits, labels, settings.IgnoreIndex);           // [B,C,P], [B,C,P], [B,1,P]
        long classCount = p.shape[1];
        var classes = settings.Classes ?? (soft ? ClassSelection.All : ClassSelection.Present);
        if (settings.ClassWeights is { } w && w.Count != classCount)
            throw new ArgumentException($"{w.Count} class weights for logits {LossInputs.Shape(logits)} with {classCount} classes.", nameof(settings));
        var (tp, fp, fn) = Counts(p * valid.to(p.dtype), y);                                           // [B,C] each
        var active = ActiveClasses(y, valid, classes, settings, logits);                   // [B,C]

        Tensor? total = null;
        void Add(double weight, Tensor term) => total = total is null ? weight * term : total + weight * term;
        if (settings.PerDataset > 0)
            Add(settings.PerDataset, LossInputs.MaskedMean(
                ClassLoss(tp.sum(0L), fp.sum(0L), fn.sum(0L), settings), active.any(0L).to(p.dtype)));
        if (settings.PerImage > 0 || settings.PerClass > 0)
        {
            var perImageLoss = ClassLoss(tp, fp, fn, settings);                            // [B,C]
            if (settings.PerImage > 0)
                Add(settings.PerImage, LossInputs.MeanOverEligible(perImageLoss, active, perImage: true));
            if (settings.PerClass > 0)
                Add(settings.PerClass, LossInputs.MeanOverEligible(perImageLoss.t(), active.t(), perImage: true));
        }
        return total!.to(logits.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The one tp/fp/fn core: per row of [B,C,P] non-negative predictions <paramref name="x"/> and labels
    /// <paramref name="y"/>, tp = (‖x‖₁ + ‖y‖₁ − ‖x − y‖₁)/2, fp = ‖x‖₁ − tp, fn = ‖y‖₁ − tp ([B,C] each).
    /// </summary>
    internal static (Tensor Tp, Tensor Fp, Tensor Fn) Counts(Tensor x, Tensor y)
    {
        var xNorm = x.sum(-1);
        var yNorm = y.sum(-1);
        var tp = (xNorm + yNorm - LossInputs.Magnitude(x - y).sum(-1)) / 2;
        return (tp, xNorm - tp, yNorm - tp);
    }

    /// <summary>w_c·(1 − T)^γ or w_c·(−log T)^γ per class (last dim) of counts of any shape.</summary>
    static Tensor ClassLoss(Tensor tp, Tensor fp, Tensor fn, MetricLossSettings s)
    {
        var t = (tp + s.Smooth) / (tp + s.Alpha * fp + s.Beta * fn + s.Smooth);
        var loss = s.LogLoss ? -t.log() : 1 - t;
        // Rounding can leave tp a hair above ‖x‖₁ and so the loss a hair below 0; pow of a negative base is NaN.
        // (A masked fill rather than clamp_min: the same values and gradient, and a meta kernel for its backward.)
        if (s.Gamma != 1) loss = loss.masked_fill(loss.lt(0), 0).pow(s.Gamma);
        if (s.WeightsLike(loss) is { } w) loss = loss * w;
        return loss;
    }

    /// <summary>
    /// [B,C] active classes per image: Present where the label exceeds the threshold in the image; All (and the
    /// classes of Only) in every image with a labelled pixel. The per-dataset set is the union over images.
    /// </summary>
    static Tensor ActiveClasses(Tensor y, Tensor valid, ClassSelection classes, MetricLossSettings settings, Tensor logits)
    {
        long batch = y.shape[0], classCount = y.shape[1];
        if (classes.IsPresent)
            return y.amax([-1]).gt(settings.Threshold);
        var labelled = valid.any(-1).expand(batch, classCount);
        if (classes.ClassIds is not { } ids) return labelled;
        foreach (var id in ids)
            if (id >= classCount)
                throw new ArgumentException($"ClassSelection {classes} names class {id}, but logits {LossInputs.Shape(logits)} have {classCount} classes.", nameof(classes));
        return labelled & settings.OnlyMask(ids, classCount, y.device);
    }

    /// <summary>
    /// Softmax probabilities [B,C,P], labels [B,C,P] zeroed where ignored, the labelled pixels [B,1,P] and whether
    /// the labels are soft.
    /// </summary>
    static (Tensor P, Tensor Y, Tensor Valid, bool Soft) Inputs(Tensor logits, Tensor labels, long? ignoreIndex)
    {
        LossInputs.RequireFloating(logits, "logits");
        var work = LossInputs.WorkType(logits);
        if (!labels.is_floating_point())
        {
            var (x, hard) = LossInputs.MultiClass(logits, labels);
            long b = x.shape[0], c = x.shape[1], pixels = x.shape[2] * x.shape[3];
            var flat = hard.reshape(b, 1, pixels);
            var valid = LossInputs.CheckedValidMask(hard, ignoreIndex, c, $"logits {LossInputs.Shape(logits)}").reshape(b, 1, pixels);
            var oneHot = flat.eq(arange(c, device: flat.device).view(1, c, 1)) & valid;
            return (x.to(work).reshape(b, c, pixels).softmax(1), oneHot.to(work), valid, false);
        }

        var l = logits.shape;
        Tensor logits4, soft4;
        if (l.Length == 4 && labels.shape.SequenceEqual(l))
            (logits4, soft4) = (logits, labels);
        else if (l.Length == 2 && labels.shape.SequenceEqual(l))
            (logits4, soft4) = (logits.t().unsqueeze(0).unsqueeze(-1), labels.t().unsqueeze(0).unsqueeze(-1));
        else
            throw new ArgumentException(
                $"soft labels {LossInputs.Shape(labels)} do not match logits {LossInputs.Shape(logits)}; expected soft labels of the logits' shape [B,C,H,W] (or [N,C]), or hard labels [B,H,W] (or [N]).");
        RequireProbabilitiesOnCpu(soft4);
        long batch = logits4.shape[0], classCount = logits4.shape[1], count = logits4.shape[2] * logits4.shape[3];
        var y = soft4.to(work).reshape(batch, classCount, count);
        var labelled = y.sum(1, keepdim: true).gt(0);
        return (logits4.to(work).reshape(batch, classCount, count).softmax(1), y, labelled, true);
    }

    /// <summary>Soft labels must be probabilities; checked on the CPU only, where it costs no device sync.</summary>
    static void RequireProbabilitiesOnCpu(Tensor soft)
    {
        if (soft.device_type != DeviceType.CPU || soft.numel() == 0) return;
        using var scope = NewDisposeScope();
        var bad = soft.lt(0) | soft.gt(1) | soft.isnan();
        if (bad.any().item<bool>())
        {
            var first = soft.masked_select(bad)[0].to(ScalarType.Float64).item<double>();
            throw new ArgumentException(
                $"soft labels {LossInputs.Shape(soft)} hold {first}: soft labels are probabilities in [0,1] (an all-zero vector marks an ignored pixel).", "labels");
        }
    }
}
