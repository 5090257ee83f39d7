using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses.LovaszLosses;

public static partial class Lovasz
{
    /// <summary>
    /// Multi-label Lovász loss ("Lovász-Sigmoid"): every channel is its own binary problem with foreground 1, the
    /// reference's <c>lovasz_softmax</c> on sigmoid outputs with <c>classes=[1]</c> for all channels at once. Equals
    /// the mean over channels c of <see cref="Softmax"/>(probas[:,c], targets[:,c], <see cref="ClassSelection.Only"/>(1),
    /// perImage, ignoreIndex), a channel without a labelled pixel counting 0, computed in one batched pass: every
    /// channel (per image: every image-channel pair) is one row of the Lovász weights.
    /// </summary>
    /// <param name="probas">[B,C,H,W] foreground probabilities (after sigmoid).</param>
    /// <param name="targets">[B,C,H,W] integer targets in {0,1}, or the ignore index (per channel).</param>
    /// <param name="perImage">Per channel, the mean over the images with a labelled pixel in it.</param>
    /// <param name="ignoreIndex">Target value of pixels to leave out, or null.</param>
    /// <returns>A scalar of the dtype of <paramref name="probas"/>.</returns>
    /// <exception cref="ArgumentException">Shapes that differ (the message names both), non-integer targets,
    /// targets other than 0, 1 and the ignore index (checked on CPU tensors, where it costs no device sync; on an
    /// accelerator such pixels are left out).</exception>
    public static Tensor Sigmoid(Tensor probas, Tensor targets, bool perImage = false, long? ignoreIndex = null)
    {
        ArgumentNullException.ThrowIfNull(probas);
        ArgumentNullException.ThrowIfNull(targets);
        LossInputs.RequireFloating(probas, nameof(probas));
        if (probas.dim() != 4 || !probas.shape.SequenceEqual(targets.shape))
            throw new ArgumentException(
                $"targets {LossInputs.Shape(targets)} do not match probas {LossInputs.Shape(probas)}; expected probas [B,C,H,W] with targets [B,C,H,W].");

        using var scope = NewDisposeScope();
        var work = LossInputs.WorkType(probas);
        long batch = probas.shape[0], channels = probas.shape[1], pixels = probas.shape[2] * probas.shape[3];
        var t = LossInputs.IntegerLabels(targets).reshape(batch, channels, pixels);
        var valid = LossInputs.CheckedValidMask(t, ignoreIndex, 2, $"multi-label probas {LossInputs.Shape(probas)}");
        if (probas.numel() == 0)
            return (probas.sum() * 0).MoveToOuterDisposeScope();

        // Rows of [R,1,L]: (image, channel) pairs per image, else channels over the whole batch. Each row is its own
        // "image" of one class, so the batched weights see a per-row valid mask.
        Tensor Rows(Tensor x) => perImage
            ? x.reshape(batch * channels, 1, pixels)
            : x.permute(1, 0, 2).reshape(channels, 1, batch * pixels);
        var validRows = Rows(valid);
        var foreground = Rows(t.eq(1)) & validRows;
        var errors = LossInputs.Magnitude(foreground.to(work) - Rows(probas.to(work).reshape(batch, channels, pixels)));
        var weights = LovaszWeights.Exact(errors, foreground, validRows, perImage: true);
        var rowLoss = (errors * weights).sum([1, 2]);                                  // [R]; 0 for a row without labels
        Tensor channelLoss = rowLoss;                                                  // [C]
        if (perImage)
        {
            var labelled = validRows.any(-1).view(batch, channels).to(work);
            channelLoss = (rowLoss.view(batch, channels) * labelled).sum(0L) / labelled.sum(0L).clamp_min(1);
        }
        return channelLoss.mean().to(probas.dtype).MoveToOuterDisposeScope();
    }
}
