using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses.LovaszLosses;

/// <summary>
/// Lovász-Softmax loss on logits: softmax over classes, then <see cref="Lovasz.Softmax"/>. Takes logits
/// [B,C,H,W] with labels [B,H,W], or [N,C] with [N].
/// </summary>
public sealed class LovaszSoftmaxLoss : nn.Module<Tensor, Tensor, Tensor>
{
    /// <summary>The default of <c>perImage</c>: false (one ranking per class over the batch, as the reference implementation does).</summary>
    public const bool DefaultPerImage = false;

    /// <summary>Creates the loss.</summary>
    /// <param name="classes">Classes to average over (default: present ones).</param>
    /// <param name="perImage">Average per image, then over images.</param>
    /// <param name="ignoreIndex">Label of pixels to leave out (default 255), or null for none.</param>
    /// <param name="bins">0: exact; &gt; 0: histogram mode with that many bins (within 1/bins of exact).</param>
    /// <param name="name">Module name.</param>
    public LovaszSoftmaxLoss(ClassSelection classes = default, bool perImage = DefaultPerImage, long? ignoreIndex = 255,
                             int bins = 0, string name = "lovasz_softmax") : base(name)
    {
        if (bins < 0 || bins > Lovasz.MaxBins)
            throw new ArgumentOutOfRangeException(nameof(bins), bins, $"bins must be 0 (exact) or in [1, {Lovasz.MaxBins}].");
        Classes = classes;
        PerImage = perImage;
        IgnoreIndex = ignoreIndex;
        Bins = bins;
    }

    /// <summary>Classes averaged over.</summary>
    public ClassSelection Classes { get; }
    /// <summary>Per-image averaging.</summary>
    public bool PerImage { get; }
    /// <summary>Ignored label, or null.</summary>
    public long? IgnoreIndex { get; }
    /// <summary>Histogram bins (0 = exact).</summary>
    public int Bins { get; }

    /// <inheritdoc/>
    public override Tensor forward(Tensor logits, Tensor labels)
    {
        using var precision = LossInputs.FullPrecision(ref logits);
        using var scope = NewDisposeScope();
        var (x, y) = LossInputs.MultiClass(logits, labels);
        var probas = x.to(LossInputs.WorkType(x)).softmax(1);
        // The softmax above makes probabilities: no range check needed.
        return Lovasz.SoftmaxWithKernelChoice(probas, y, Classes, PerImage, IgnoreIndex, Bins, allowCpuKernel: true).to(logits.dtype).MoveToOuterDisposeScope();
    }
}
