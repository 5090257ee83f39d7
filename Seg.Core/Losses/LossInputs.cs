using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses;

/// <summary>
/// Shape and label checks shared by the softmax-family losses, so that every one of them fails with the same clear
/// message naming the loss, the tensor and its shape.
/// </summary>
internal static class LossInputs
{
    internal static string Shape(Tensor t) => "[" + string.Join(",", t.shape) + "]";

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
        using var scope = NewDisposeScope();
        var bad = labels.ne(ignoreIndex).logical_and(labels.lt(0).logical_or(labels.ge(classes)));
        if (bad.any().item<bool>())
        {
            var value = labels.masked_select(bad)[0].item<long>();
            throw new ArgumentException(
                $"{owner}: label {value} is outside [0,{classes}) and is not the ignore index {ignoreIndex}.", "labels");
        }
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
}
