using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Bench.Baselines;

/// <summary>
/// A faithful port of the reference Lovász-Softmax (bermanmaxim/LovaszSoftmax, pytorch/lovasz_losses.py:
/// <c>lovasz_softmax</c>, <c>flatten_probas</c>, <c>lovasz_softmax_flat</c>, <c>lovasz_grad</c>), the baseline the
/// batched implementation is measured against: it drops ignored pixels by boolean indexing, then loops over classes
/// with one sort per class (and per image in per-image mode). Kept with its quirks (empty mean = 0); benchmark only.
/// </summary>
public static class OfficialLovaszPort
{
    /// <summary><c>lovasz_softmax(probas, labels, classes, per_image, ignore)</c>; classes: "present", "all".</summary>
    public static Tensor LovaszSoftmax(Tensor probas, Tensor labels, string classes = "present", bool perImage = false, long? ignore = null)
    {
        if (!perImage)
        {
            var (p, l) = FlattenProbas(probas, labels, ignore);
            return LovaszSoftmaxFlat(p, l, classes);
        }
        var losses = new List<Tensor>();
        for (long b = 0; b < probas.shape[0]; b++)
        {
            var (p, l) = FlattenProbas(probas[b].unsqueeze(0), labels[b].unsqueeze(0), ignore);
            losses.Add(LovaszSoftmaxFlat(p, l, classes));
        }
        return Mean(losses);
    }

    static Tensor LovaszSoftmaxFlat(Tensor probas, Tensor labels, string classes)
    {
        if (probas.numel() == 0) return probas * 0.0;
        long c = probas.shape[1];
        var losses = new List<Tensor>();
        for (long k = 0; k < c; k++)
        {
            var fg = labels.eq(k).to(probas.dtype);
            if (classes == "present" && fg.sum().item<float>() == 0) continue;
            var classPred = c == 1 ? probas[.., 0] : probas[.., k];
            var errors = (fg - classPred).abs();
            var (errorsSorted, perm) = errors.sort(0, descending: true);
            var fgSorted = fg[perm];
            losses.Add(errorsSorted.dot(LovaszGrad(fgSorted)));
        }
        return Mean(losses);
    }

    static Tensor LovaszGrad(Tensor gtSorted)
    {
        long p = gtSorted.shape[0];
        var gts = gtSorted.sum();
        var intersection = gts - gtSorted.cumsum(0);
        var union = gts + (1 - gtSorted).cumsum(0);
        var jaccard = 1.0 - intersection / union;
        if (p > 1)
            jaccard[TensorIndex.Slice(1, p)] = jaccard[TensorIndex.Slice(1, p)] - jaccard[TensorIndex.Slice(0, -1)];
        return jaccard;
    }

    static (Tensor, Tensor) FlattenProbas(Tensor probas, Tensor labels, long? ignore)
    {
        if (probas.dim() == 3)
            probas = probas.unsqueeze(1);
        long c = probas.shape[1];
        probas = probas.permute(0, 2, 3, 1).contiguous().view(-1, c);
        labels = labels.view(-1);
        if (ignore is null) return (probas, labels);
        var valid = labels.ne(ignore.Value);
        var vprobas = probas[valid.nonzero().squeeze()];
        var vlabels = labels[valid];
        return (vprobas, vlabels);
    }

    static Tensor Mean(List<Tensor> values)
    {
        if (values.Count == 0) return tensor(0.0f);
        var acc = values[0];
        for (int i = 1; i < values.Count; i++) acc = acc + values[i];
        return values.Count == 1 ? acc : acc / values.Count;
    }
}
