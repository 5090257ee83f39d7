using Seg.Train.Config;
using static TorchSharp.torch;

namespace Seg.Train.Training;

/// <summary>Maps <c>model.head</c> to a <c>ModelOptions.HeadFactory</c> (null: the model's own 1×1 convolution).</summary>
public static class HeadFactories
{
    /// <summary>The head factory for <paramref name="head"/>.</summary>
    public static Func<long, int, nn.Module<Tensor, Tensor>>? For(HeadConfig head) => head.Type switch
    {
        "linear" => null,
        _ => throw new ConfigException("config", "model.head.type", $"'{head.Type}' heads are not available in this build"),
    };
}
