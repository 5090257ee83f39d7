using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses.LovaszLosses;

/// <summary>
/// The Lovász-Softmax and Lovász hinge losses: convex surrogates of the Jaccard (IoU) loss built from its Lovász
/// extension (M. Berman, A. Rannen Triki, M. B. Blaschko, "The Lovász-Softmax loss: a tractable surrogate for the
/// optimization of the intersection-over-union measure in neural networks", CVPR 2018). For a class c with errors
/// e_i = |[y_i = c] − p_i(c)| sorted in descending order, the loss is Σ_i e_(i) · (J_i − J_{i−1}), J_i the Jaccard
/// loss of the first i errors; only the errors carry a gradient.
/// <para>
/// Semantics follow the reference implementation (bermanmaxim/LovaszSoftmax, pytorch/lovasz_losses.py), computed
/// for all classes (and all images in per-image mode) at once instead of a loop of small sorts: float32 on the CPU
/// by <see cref="LovaszCpuKernel"/> (parallel radix sort, or histogram, over the tensors' memory), anything else by
/// one batched sort, cumsum and scatter on the device of the inputs (<see cref="LovaszWeights"/>). Where the reference is broken this does better: a set without valid pixels gives a 0 scalar
/// with zero gradient (never an empty tensor or NaN) and such an image is left out of the per-image mean (the
/// reference counts it as 0); one valid pixel works; float16, bfloat16 and float64 inputs work (the first two are
/// computed in float32, the result has the input's dtype). For [B,H,W] sigmoid probabilities the reference
/// compares them with class 0; here they are foreground (class 1) probabilities as documented.
/// </para>
/// </summary>
public static partial class Lovasz
{
    /// <summary>The largest histogram bin count (2^24: far finer than float32 errors in [0,1] can use).</summary>
    public const int MaxBins = 1 << 24;

    /// <summary>
    /// Lovász-Softmax loss on <b>probabilities, not logits</b>: pass <c>logits.softmax(1)</c>, or use
    /// <see cref="LovaszSoftmaxLoss"/>, which takes the logits and applies the softmax itself. Logits given here
    /// would return a plausible-looking number; on the CPU, where the check costs no device wait, values outside
    /// [0, 1] throw. On other devices nothing is checked (a check would wait for the device each call). Whether
    /// each pixel's probabilities sum to 1 is not checked: per-class sigmoid probabilities are valid input too.
    /// </summary>
    /// <param name="probas">[B,C,H,W] class probabilities (after softmax), or [B,H,W] foreground probabilities
    /// (after sigmoid: two classes, background 1−p and foreground p; Present and All then mean class 1 and
    /// Only may name 0 and 1). Not logits.</param>
    /// <param name="labels">[B,H,W] int64 class ids.</param>
    /// <param name="classes">Classes to average over (default: present ones).</param>
    /// <param name="perImage">Average per image, then over images with at least one selected class.</param>
    /// <param name="ignoreIndex">Label of pixels to leave out, or null.</param>
    /// <param name="bins">0: exact. &gt; 0: histogram mode with that many error bins per class; the loss is within
    /// 1/bins of the exact loss.</param>
    /// <returns>A scalar of the dtype of <paramref name="probas"/>.</returns>
    /// <exception cref="ArgumentException">Shapes that do not match (the message names both), non-integer labels,
    /// labels or selected classes outside the classes of <paramref name="probas"/>; on the CPU, values of
    /// <paramref name="probas"/> outside [0, 1] (logits instead of probabilities).</exception>
    public static Tensor Softmax(Tensor probas, Tensor labels, ClassSelection classes = default,
                                 bool perImage = false, long? ignoreIndex = null, int bins = 0)
    {
        ArgumentNullException.ThrowIfNull(probas);
        RequireProbabilitiesOnCpu(probas, nameof(probas));
        return SoftmaxWithKernelChoice(probas, labels, classes, perImage, ignoreIndex, bins, allowCpuKernel: true);
    }

    /// <summary>Throws when CPU <paramref name="probas"/> hold a value outside [0, 1] (NaN passes, as the loss
    /// propagates it): the mark of logits given for probabilities. One min/max pass, no device wait on the CPU.</summary>
    static void RequireProbabilitiesOnCpu(Tensor probas, string name)
    {
        if (probas.device_type != DeviceType.CPU || probas.numel() == 0 || !probas.is_floating_point()) return;
        using var scope = NewDisposeScope();
        var (min, max) = probas.detach().aminmax();
        double low = min.to(ScalarType.Float64).item<double>(), high = max.to(ScalarType.Float64).item<double>();
        if (low < 0 || high > 1)
            throw new ArgumentException(
                $"{name} holds values outside [0, 1] (min {low:G4}, max {high:G4}): Lovász-Softmax takes probabilities, not logits; " +
                "pass logits.softmax(1), or use LovaszSoftmaxLoss, which takes the logits.", name);
    }

    /// <summary><see cref="Softmax(Tensor, Tensor, ClassSelection, bool, long?, int)"/>; tests turn the CPU kernel
    /// off to compare it with the device-generic path.</summary>
    internal static Tensor SoftmaxWithKernelChoice(Tensor probas, Tensor labels, ClassSelection classes, bool perImage,
                                   long? ignoreIndex, int bins, bool allowCpuKernel)
    {
        ArgumentNullException.ThrowIfNull(probas);
        ArgumentNullException.ThrowIfNull(labels);
        if (bins < 0 || bins > MaxBins)
            throw new ArgumentOutOfRangeException(nameof(bins), bins, $"bins must be 0 (exact) or in [1, {MaxBins}].");
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
        string what = $"probas {LossInputs.Shape(probas)}";
        IgnoreIndexRule.Check(ignoreIndex, classCount);
        // float32 on the CPU takes the fused kernel, which also reads the labels in one pass of its own.
        bool kernel = allowCpuKernel && LovaszCpuKernel.SupportsSoftmax(probas, classCount) && !LabelChecks.Defers(y);
        Tensor? valid = null, kernelLabels = null, classCounts;
        if (kernel)
            (kernelLabels, classCounts) = LovaszCpuKernel.SoftmaxLabels(y, ignoreIndex, classCount, what);
        else
        {
            valid = LossInputs.CheckedValidMask(y, ignoreIndex, classCount, what).reshape(batch, 1, pixels);
            classCounts = ClassCounts(y.reshape(batch, pixels), valid.view(batch, pixels), classCount);
        }

        var ids = SelectedClasses(classes, binary, classCount, probas);
        if (batch * pixels == 0)
            return (probas.sum() * 0).MoveToOuterDisposeScope();
        var p = probas.to(work);
        var selected = binary
            ? cat(ids.Select(id => id == 1 ? p.reshape(batch, 1, pixels) : 1 - p.reshape(batch, 1, pixels)).ToArray(), 1)
            : Select(p.reshape(batch, classCount, pixels), ids, classCount);

        // Eligibility from per-image class counts: Present needs the class in the set, All and Only a valid pixel.
        var imageClassCounts = Select(classCounts, ids, classCount);
        var eligible = classes.IsPresent
            ? imageClassCounts.gt(0)
            : classCounts.sum(-1, keepdim: true).gt(0).expand(batch, ids.Length);   // [B,K]

        // Σ |fg − p|·w = Σ sign(p − fg)·w·p + offset: the gradient w.r.t. p is the signed weight.
        Tensor rowLoss;                                                         // [B,K] (perImage) or [K]
        if (kernel)
        {
            var (signedWeights, _, rowLosses) = LovaszCpuKernel.SoftmaxTerms(selected, kernelLabels!, ids, perImage, bins);
            rowLoss = LovaszCpuKernel.RowLoss(selected, signedWeights, rowLosses, perImage);
        }
        else
        {
            var (signedWeights, offsets) = LovaszWeights.SoftmaxTerms(
                selected, ForegroundMask(y.reshape(batch, 1, pixels), valid!, ids, classCount), valid!, perImage, bins);
            rowLoss = perImage
                ? (selected * signedWeights).sum(-1) + offsets.view(batch, ids.Length)
                : (selected * signedWeights).sum([0, 2]) + offsets;
        }
        var loss = perImage
            ? LossInputs.MeanOverEligible(rowLoss, eligible, perImage: true)
            : LossInputs.MeanOverEligible(rowLoss, eligible.any(0L), perImage: false);
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
        var integerLabels = LossInputs.IntegerLabels(labels);
        var y = integerLabels.reshape(batch, 1, pixels);
        var valid = LossInputs.CheckedValidMask(integerLabels, ignoreIndex, 2, $"binary logits {LossInputs.Shape(logits)}").reshape(batch, 1, pixels);
        if (batch * pixels == 0)
            return (logits.sum() * 0).MoveToOuterDisposeScope();

        var foreground = y.eq(1) & valid;
        var signs = foreground.to(work) * 2 - 1;
        var errors = 1 - logits.to(work).reshape(batch, 1, pixels) * signs;   // [B,1,P]
        var weights = LovaszWeights.Exact(errors, foreground, valid, perImage);
        // relu as a masked fill: the same values, and the same zero gradient at 0 as F.relu in the reference;
        // unlike relu it has a meta kernel, so the no-synchronisation tests can run it on the meta device.
        var rowLoss = (errors.masked_fill(errors.le(0), 0) * weights).sum(-1);   // [B,1]
        // Present-style eligibility is not used: the reference scores images without foreground too.
        var loss = perImage
            ? LossInputs.MeanOverEligible(rowLoss, valid.any(-1), perImage: true)
            : LossInputs.MeanOverEligible(rowLoss.sum(0L), valid.any().view(1), perImage: false);
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

    /// <summary>The entries <paramref name="ids"/> of dim 1 of <paramref name="t"/> (<paramref name="classCount"/>
    /// long): <paramref name="t"/> itself for all classes in order, else slices joined by one cat (no index tensor
    /// to copy to the device).</summary>
    static Tensor Select(Tensor t, long[] ids, long classCount) =>
        ids.Length == classCount && ids.Select((id, i) => id == i).All(x => x)
            ? t
            : cat(ids.Select(id => t.narrow(1, id, 1)).ToArray(), 1);

    /// <summary>[B,K,P] mask of the valid pixels of each selected class, from [B,1,P] labels and valid mask.</summary>
    static Tensor ForegroundMask(Tensor labels, Tensor valid, long[] ids, long classCount)
    {
        var classIds = Select(arange(classCount, device: labels.device).view(1, classCount, 1), ids, classCount);
        return labels.eq(classIds) & valid;
    }

    /// <summary>[B,C] count of each class among the valid pixels of each image, by one count of (image, class) slots.</summary>
    static Tensor ClassCounts(Tensor labels, Tensor valid, long classCount)
    {
        long batch = labels.shape[0];
        var slot = (arange(batch, device: labels.device).unsqueeze(1) * classCount + labels)
            .masked_fill(~valid, batch * classCount);
        return LossInputs.Bincount(slot, batch * classCount + 1).narrow(0, 0, batch * classCount).view(batch, classCount);
    }
}
