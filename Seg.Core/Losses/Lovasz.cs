using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses;

/// <summary>
/// The Lovász-Softmax and Lovász hinge losses: convex surrogates of the Jaccard (IoU) loss built from its Lovász
/// extension (M. Berman, A. Rannen Triki, M. B. Blaschko, "The Lovász-Softmax loss: a tractable surrogate for the
/// optimization of the intersection-over-union measure in neural networks", CVPR 2018). For a class c with errors
/// e_i = |[y_i = c] − p_i(c)| sorted in descending order, the loss is Σ_i e_(i) · (J_i − J_{i−1}), J_i the Jaccard
/// loss of the first i errors; only the errors carry a gradient.
/// <para>
/// Semantics follow the reference implementation (bermanmaxim/LovaszSoftmax, pytorch/lovasz_losses.py), computed
/// for all classes (and all images in per-image mode) in one batched sort instead of a loop of small sorts, on the
/// device of the inputs. Where the reference is broken this does better: a set without valid pixels gives a 0 scalar
/// with zero gradient (never an empty tensor or NaN) and such an image is left out of the per-image mean (the
/// reference counts it as 0); one valid pixel works; float16, bfloat16 and float64 inputs work (the first two are
/// computed in float32, the result has the input's dtype). For [B,H,W] sigmoid probabilities the reference
/// compares them with class 0; here they are foreground (class 1) probabilities as documented.
/// </para>
/// </summary>
public static class Lovasz
{
    /// <summary>
    /// Lovász-Softmax loss.
    /// </summary>
    /// <param name="probas">[B,C,H,W] class probabilities (after softmax), or [B,H,W] foreground probabilities
    /// (after sigmoid: two classes, background 1−p and foreground p; Present and All then mean class 1 and
    /// Only may name 0 and 1).</param>
    /// <param name="labels">[B,H,W] int64 class ids.</param>
    /// <param name="classes">Classes to average over (default: present ones).</param>
    /// <param name="perImage">Average per image, then over images with at least one selected class.</param>
    /// <param name="ignoreIndex">Label of pixels to leave out, or null.</param>
    /// <param name="bins">0: exact. &gt; 0: histogram mode with that many error bins per class; the loss is within
    /// 1/bins of the exact loss.</param>
    /// <returns>A scalar of the dtype of <paramref name="probas"/>.</returns>
    /// <exception cref="ArgumentException">Shapes that do not match (the message names both), non-integer labels,
    /// labels or selected classes outside the classes of <paramref name="probas"/>.</exception>
    public static Tensor Softmax(Tensor probas, Tensor labels, ClassSelection classes = default,
                                 bool perImage = false, long? ignoreIndex = null, int bins = 0)
    {
        ArgumentNullException.ThrowIfNull(probas);
        ArgumentNullException.ThrowIfNull(labels);
        if (bins < 0) throw new ArgumentOutOfRangeException(nameof(bins), bins, "bins must be 0 (exact) or positive.");
        LossInputs.RequireFloating(probas, nameof(probas));
        var ps = probas.shape;
        var ls = labels.shape;
        bool binary = ps.Length == 3;
        bool matches = ls.Length == 3 && (binary ? ps.SequenceEqual(ls) : ps.Length == 4 && ps[0] == ls[0] && ps[2] == ls[1] && ps[3] == ls[2]);
        if (!matches)
            throw new ArgumentException(
                $"labels {LossInputs.Shape(labels)} do not match probas {LossInputs.Shape(probas)}; expected probas [B,C,H,W] or [B,H,W] with labels [B,H,W].");

        using var scope = NewDisposeScope();
        var work = LossInputs.WorkType(probas);
        var y = LossInputs.IntegerLabels(labels);
        long batch = ps[0];
        long pixels = ls[1] * ls[2];
        long classCount = binary ? 2 : ps[1];
        var flatLabels = y.reshape(batch, 1, pixels);
        var valid = LossInputs.ValidMask(flatLabels, ignoreIndex);
        LossInputs.RequireLabelsInRange(flatLabels, valid, classCount, $"probas {LossInputs.Shape(probas)}");

        var ids = SelectedClasses(classes, binary, classCount, probas);
        if (batch * pixels == 0)
            return (probas.sum() * 0).MoveToOuterDisposeScope();
        var p = probas.to(work);
        Tensor selected;
        if (binary)
        {
            var foreground = p.reshape(batch, 1, pixels);
            selected = cat(ids.Select(id => id == 1 ? foreground : 1 - foreground).ToArray(), 1);
        }
        else
        {
            var flat = p.reshape(batch, classCount, pixels);
            selected = ids.Length == classCount && ids.Select((id, i) => id == i).All(x => x)
                ? flat
                : flat.index_select(1, tensor(ids, device: probas.device));
        }

        var idTensor = tensor(ids, device: probas.device).view(1, -1, 1);
        var foregroundMask = flatLabels.eq(idTensor) & valid;                 // [B,K,P]
        var errors = (foregroundMask.to(work) - selected).abs();               // [B,K,P]
        var loss = Reduce(errors, foregroundMask, valid, classes.IsPresent, perImage, bins);
        return loss.to(probas.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Lovász hinge loss for binary segmentation: errors 1 − s·(2y−1) of real-valued scores s, their positive
    /// parts weighted by the Lovász extension of the foreground Jaccard loss (Berman et al., CVPR 2018).
    /// </summary>
    /// <param name="logits">[B,H,W] real-valued scores.</param>
    /// <param name="labels">[B,H,W] labels in {0,1} (or the ignore index).</param>
    /// <param name="perImage">Average per image, over images with at least one valid pixel.</param>
    /// <param name="ignoreIndex">Label of pixels to leave out, or null.</param>
    /// <returns>A scalar of the dtype of <paramref name="logits"/>.</returns>
    public static Tensor Hinge(Tensor logits, Tensor labels, bool perImage = true, long? ignoreIndex = null)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(labels);
        LossInputs.RequireFloating(logits, nameof(logits));
        if (logits.dim() != 3 || !logits.shape.SequenceEqual(labels.shape))
            throw new ArgumentException(
                $"labels {LossInputs.Shape(labels)} do not match logits {LossInputs.Shape(logits)}; expected logits [B,H,W] with labels [B,H,W].");

        using var scope = NewDisposeScope();
        var work = LossInputs.WorkType(logits);
        long batch = logits.shape[0];
        long pixels = logits.shape[1] * logits.shape[2];
        var y = LossInputs.IntegerLabels(labels).reshape(batch, 1, pixels);
        var valid = LossInputs.ValidMask(y, ignoreIndex);
        LossInputs.RequireLabelsInRange(y, valid, 2, $"binary logits {LossInputs.Shape(logits)}");
        if (batch * pixels == 0)
            return (logits.sum() * 0).MoveToOuterDisposeScope();

        var foreground = y.eq(1) & valid;
        var signs = foreground.to(work) * 2 - 1;
        var errors = 1 - logits.to(work).reshape(batch, 1, pixels) * signs;   // [B,1,P]
        var weights = RowWeights(errors, foreground, valid.expand(errors.shape), perImage, 0);
        var rowLoss = (nn.functional.relu(errors) * weights).sum(-1);          // [B,1]
        // Present-style eligibility is not used: the reference scores images without foreground too.
        var loss = perImage
            ? MeanOverEligible(rowLoss, valid.sum(-1).gt(0), perImage: true)
            : MeanOverEligible(rowLoss.sum(0), valid.sum([0, 2]).gt(0), perImage: false);
        return loss.to(logits.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>The class ids a selection picks, checked against the classes of the input.</summary>
    static long[] SelectedClasses(ClassSelection classes, bool binary, long classCount, Tensor probas)
    {
        if (classes.ClassIds is { } only)
        {
            foreach (var id in only)
                if (id >= classCount)
                    throw new ArgumentException(
                        $"ClassSelection {classes} names class {id}, but probas {LossInputs.Shape(probas)} have {classCount} classes{(binary ? " (binary: 0 and 1)" : "")}.",
                        nameof(classes));
            return only.ToArray();
        }
        return binary ? [1L] : Enumerable.Range(0, (int)classCount).Select(i => (long)i).ToArray();
    }

    /// <summary>Loss of every (image,) class row, then the mean over eligible rows (and images).</summary>
    static Tensor Reduce(Tensor errors, Tensor foreground, Tensor valid, bool presentOnly, bool perImage, int bins)
    {
        var weights = RowWeights(errors, foreground, valid.expand(errors.shape), perImage, bins);
        var contributions = errors * weights;
        if (perImage)
        {
            var eligible = presentOnly ? foreground.any(-1) : valid.any(-1).expand(errors.shape[0], errors.shape[1]);
            return MeanOverEligible(contributions.sum(-1), eligible, perImage: true);
        }
        else
        {
            var eligible = presentOnly ? foreground.any(-1).any(0) : valid.any().expand(errors.shape[1]);
            return MeanOverEligible(contributions.sum([0, 2]), eligible, perImage: false);
        }
    }

    /// <summary>
    /// Lovász weights for [B,K,P] errors: rows are (image, class) pairs in per-image mode, classes over the
    /// whole batch otherwise.
    /// </summary>
    static Tensor RowWeights(Tensor errors, Tensor foreground, Tensor valid, bool perImage, int bins)
    {
        long b = errors.shape[0], k = errors.shape[1], p = errors.shape[2];
        if (bins > 0)
        {
            var rowOf = perImage
                ? arange(b * k, device: errors.device).view(b, k, 1)
                : arange(k, device: errors.device).view(1, k, 1).expand(b, k, 1);
            return LovaszWeights.Histogram(errors, foreground, valid, rowOf, perImage ? b * k : k, bins);
        }
        if (perImage)
            return LovaszWeights.Exact(errors.reshape(b * k, p), foreground.reshape(b * k, p), valid.reshape(b * k, p)).view(b, k, p);
        Tensor Rows(Tensor t) => t.permute(1, 0, 2).reshape(k, b * p);
        return LovaszWeights.Exact(Rows(errors), Rows(foreground), Rows(valid)).view(k, b, p).permute(1, 0, 2);
    }

    /// <summary>
    /// Mean of row losses over eligible rows; in per-image mode ([B,K] rows) the mean per image, then over images
    /// with an eligible row. Nothing eligible gives 0 with a zero gradient, never 0/0.
    /// </summary>
    static Tensor MeanOverEligible(Tensor rowLoss, Tensor eligible, bool perImage)
    {
        var mask = eligible.to(rowLoss.dtype);
        if (!perImage)
            return (rowLoss * mask).sum() / mask.sum().clamp_min(1);
        var rowsPerImage = mask.sum(-1);
        var imageLoss = (rowLoss * mask).sum(-1) / rowsPerImage.clamp_min(1);
        var imageMask = rowsPerImage.gt(0).to(rowLoss.dtype);
        return (imageLoss * imageMask).sum() / imageMask.sum().clamp_min(1);
    }
}
