using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Seg.Models.Segmentation;

/// <summary>Head builders with torchvision's layouts and child names.</summary>
public static class Heads
{
    /// <summary>torchvision's <c>DeepLabHead</c>: ASPP (children <c>0</c>), 3×3 conv 256 (<c>1</c>), BN (<c>2</c>),
    /// ReLU, final classifier (<c>4</c>, built by <see cref="ModelOptions.HeadFactory"/> when set).</summary>
    public static Sequential DeepLabHead(long inChannels, int numClasses, IReadOnlyList<long> atrousRates, ModelOptions options) =>
        Sequential(
            new Aspp(inChannels, atrousRates),
            Layers.Conv3x3(256, 256), Layers.Bn(256), ReLU(),
            Layers.Classifier(256, numClasses, options));

    /// <summary>torchvision's <c>FCNHead</c> (FCN's head and every auxiliary head): 3×3 conv to inChannels/4, BN, ReLU,
    /// dropout 0.1, 1×1 conv with bias to numClasses (children <c>0</c>, <c>1</c>, <c>4</c> hold parameters). As a main
    /// head (<paramref name="options"/> given), the last layer is built by <see cref="ModelOptions.HeadFactory"/> when set.</summary>
    public static Sequential FcnHead(long inChannels, int numClasses, ModelOptions? options = null)
    {
        long inter = inChannels / 4;
        return Sequential(Layers.Conv3x3(inChannels, inter), Layers.Bn(inter), ReLU(), Dropout(0.1),
            options is null ? Conv2d(inter, numClasses, 1) : Layers.Classifier(inter, numClasses, options));
    }
}
