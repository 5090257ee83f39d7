using Seg.Core.Losses;
using Seg.Core.Losses.MarginSoftmax;
using Seg.Models.Export;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Seg.Models.Heads;

/// <summary>
/// Cosine classifier head for segmentation: a 1×1 convolution projects features [B,inChannels,h,w] to an embedding,
/// which is L2-normalised per pixel; the logits are s·cos θ against L2-normalised class weights, [B,numClasses,h,w].
/// Train it with a margin on those logits (<see cref="MarginCrossEntropyLoss"/> with AM or ArcFace) and evaluate
/// it as it is (no margin). The constructor fits <c>Func&lt;long inChannels, int numClasses, Module&lt;Tensor,Tensor&gt;&gt;</c>
/// head factories: <c>(c, k) =&gt; new CosineHead(c, k)</c>.
/// </summary>
public sealed class CosineHead : nn.Module<Tensor, Tensor>, IOnnxExportable
{
    /// <summary>The 1×1 projection to the embedding.</summary>
    public Conv2d projection;

    /// <summary>Class weights [numClasses, embeddingDim] (normalised on use).</summary>
    public Parameter weight;

    /// <summary>The logit scale s.</summary>
    public double Scale { get; }

    /// <summary>Embedding size.</summary>
    public long EmbeddingDim { get; }

    /// <summary>
    /// The unit-norm pixel embeddings [B,embeddingDim,h,w] of the last forward (e.g. for <see cref="CenterLoss"/>
    /// through <see cref="PixelEmbeddingSampler"/>), attached to the graph. Computed on access, in the caller's
    /// dispose scope, from the projection of that forward, which lives as long as the forward's dispose scope;
    /// the forward itself never normalises the pixels (see <see cref="CosineMargin.ScaledCosine"/>).
    /// </summary>
    public Tensor? LastEmbedding => lastProjection is null ? null : nn.functional.normalize(lastProjection, p: 2, dim: 1);

    Tensor? lastProjection;

    /// <summary>Creates the head.</summary>
    /// <param name="inChannels">Channels of the incoming features.</param>
    /// <param name="numClasses">Number of classes.</param>
    /// <param name="embeddingDim">Size of the per-pixel embedding.</param>
    /// <param name="scale">The logit scale s.</param>
    public CosineHead(long inChannels, int numClasses, long embeddingDim = 64, double scale = 16) : base(nameof(CosineHead))
    {
        if (inChannels < 1) throw new ArgumentOutOfRangeException(nameof(inChannels), inChannels, "CosineHead: inChannels must be ≥ 1.");
        if (numClasses < 2) throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, "CosineHead: numClasses must be ≥ 2.");
        if (embeddingDim < 1) throw new ArgumentOutOfRangeException(nameof(embeddingDim), embeddingDim, "CosineHead: embeddingDim must be ≥ 1.");
        if (!(scale > 0)) throw new ArgumentOutOfRangeException(nameof(scale), scale, "CosineHead: scale must be > 0.");
        Scale = scale;
        EmbeddingDim = embeddingDim;
        projection = nn.Conv2d(inChannels, embeddingDim, 1);
        weight = new Parameter(nn.init.xavier_uniform_(empty(numClasses, embeddingDim, dtype: ScalarType.Float32)));
        RegisterComponents();
    }

    /// <summary>Features [B,inChannels,h,w] → s·cos θ logits [B,numClasses,h,w].</summary>
    public override Tensor forward(Tensor features)
    {
        if (features.dim() != 4 || features.shape[1] != projection.in_channels)
            throw new ArgumentException(
                $"CosineHead: features must be [B,{projection.in_channels},h,w]; got [{string.Join(",", features.shape)}].",
                nameof(features));
        lastProjection = projection.forward(features);
        return CosineMargin.ScaledCosine(lastProjection, weight, Scale);
    }

    /// <summary><see cref="CosineMargin.ScaledCosine"/> in ONNX nodes: the normalised class weights as a 1×1
    /// convolution kernel (ONNX Runtime folds that part), times the clamped inverse norm of each pixel, times s.</summary>
    string IOnnxExportable.ExportOnnx(OnnxGraphBuilder g, string path, string features)
    {
        string P(string name) => OnnxGraphBuilder.Join(path, name);
        var projected = g.Module(projection, P("projection"), features);
        var w = g.Weight(P("weight"), weight);
        var wNorm = g.Op("Max", P("weight_norm"), [g.ReduceKeepDims("ReduceL2", P("weight_l2"), w, 1), g.Scalar(1e-12f)]);
        var kernel = g.Op("Unsqueeze", P("weight_kernel"), [g.Op("Div", P("weight_unit"), [w, wNorm]), g.Int64s(2, 3)]);
        var dot = g.Op("Conv", P("cosine"), [projected, kernel]);
        var squared = g.Op("Max", P("pixel_norm2"), [g.ReduceKeepDims("ReduceSumSquare", P("pixel_sumsq"), projected, 1), g.Scalar(1e-24f)]);
        var inverse = g.Op("Reciprocal", P("pixel_inverse_norm"), [g.Op("Sqrt", P("pixel_norm"), [squared])]);
        return g.Op("Mul", P("scale"), [g.Op("Mul", P("cosine_unit"), [dot, inverse]), g.Scalar((float)Scale)]);
    }
}
