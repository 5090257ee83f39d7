using Seg.Models.Heads;
using Seg.Train.Config;
using static TorchSharp.torch;

namespace Seg.Train.Training;

/// <summary>Remembers the cosine head a model was built with, so that loss terms can read its pixel embeddings.</summary>
public sealed class HeadHolder
{
    /// <summary>The cosine head, once the model factory has built it; null for linear heads.</summary>
    public CosineHead? Cosine { get; set; }
}

/// <summary>Maps <c>model.head</c> to a <c>ModelOptions.HeadFactory</c> (null: the model's own 1×1 convolution).</summary>
public static class HeadFactories
{
    /// <summary>The head factory for <paramref name="head"/>; a cosine head built by it is kept in <paramref name="holder"/>.</summary>
    public static Func<long, int, nn.Module<Tensor, Tensor>>? For(HeadConfig head, HeadHolder holder) => head.Type switch
    {
        "cosine" => (channels, classes) => holder.Cosine = new CosineHead(channels, classes, head.EmbeddingDim, head.Scale),
        _ => null,
    };
}
