using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Seg.Models.Blocks;

/// <summary>Builders of torchvision's <c>Conv2dNormActivation</c>: a Sequential of the convolution (child <c>0</c>),
/// the normalisation (<c>1</c>) and the activation (<c>2</c>, absent when null), with padding
/// (kernel − 1)/2·dilation, so the state_dict names are torchvision's.</summary>
public static class ConvNormActivation
{
    /// <summary>Convolution (no bias), BatchNorm with <paramref name="bnEps"/> and <paramref name="bnMomentum"/>,
    /// then <paramref name="activation"/>.</summary>
    public static Sequential WithBatchNorm(long inC, long outC, long kernel, long stride = 1, long groups = 1, long dilation = 1,
        ActivationKind? activation = ActivationKind.ReLU, double bnEps = 1e-5, double bnMomentum = 0.1)
    {
        var conv = Conv2d(inC, outC, kernel, stride: stride, padding: (kernel - 1) / 2 * dilation, dilation: dilation, groups: groups, bias: false);
        var bn = BatchNorm2d(outC, eps: bnEps, momentum: bnMomentum);
        return activation is { } kind ? Sequential(conv, bn, new Activation(kind)) : Sequential(conv, bn);
    }
}
