using Seg.Core.Losses;
using Seg.Core.Losses.MarginSoftmax;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Train.Training;

/// <summary>
/// Center loss as a <see cref="CompositeLoss"/> term: it ignores the logits it is given and pulls the cosine head's
/// pixel embeddings (a sample of at most <c>max_pixels</c> per step) towards their class centers, then moves the
/// centers by the paper's update rule (Wen et al., ECCV 2016; see <see cref="CenterLoss"/>).
/// </summary>
public sealed class CenterTerm : nn.Module<Tensor, Tensor, Tensor>
{
    readonly HeadHolder holder;
    readonly int maxPixels;
    /// <summary>The wrapped loss; its centers are saved in checkpoints with the loss state.</summary>
    public CenterLoss center;

    /// <summary>A center term over the embeddings of <paramref name="holder"/>'s cosine head.</summary>
    public CenterTerm(HeadHolder holder, long embeddingDim, int classes, double alpha, int maxPixels, long ignoreIndex, string name) : base(name)
    {
        this.holder = holder;
        this.maxPixels = maxPixels;
        center = new CenterLoss(embeddingDim, classes, alpha, ignoreIndex);
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor logits, Tensor labels)
    {
        var embedding = holder.Cosine?.LastEmbedding
            ?? throw new InvalidOperationException("center loss: the cosine head has produced no embedding in this step");
        using var scope = NewDisposeScope();
        var (x, y) = PixelEmbeddingSampler.Sample(embedding, labels, maxPixels, center.IgnoreIndex);
        var loss = center.forward(x, y);
        using (no_grad()) center.UpdateCenters(x.detach(), y);
        return loss.MoveToOuterDisposeScope();
    }
}
