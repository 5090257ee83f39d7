using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Seg.Models;

/// <summary>Small layer builders shared by the models, with PyTorch's defaults spelled out once.</summary>
internal static class Layers
{
    public static Conv2d Conv3x3(long inC, long outC, long stride = 1, long dilation = 1, bool bias = false, long groups = 1) =>
        Conv2d(inC, outC, 3, stride: stride, padding: dilation, dilation: dilation, bias: bias, groups: groups);

    public static Conv2d Conv1x1(long inC, long outC, long stride = 1, bool bias = false) =>
        Conv2d(inC, outC, 1, stride: stride, bias: bias);

    public static BatchNorm2d Bn(long c) => BatchNorm2d(c);

    /// <summary>Conv 3×3 → BN → ReLU, twice (Ronneberger et al.'s double convolution, with batch norm).
    /// Children are named <c>0</c>…<c>5</c>.</summary>
    public static Sequential DoubleConv(long inC, long outC) => Sequential(
        Conv3x3(inC, outC), Bn(outC), ReLU(), Conv3x3(outC, outC), Bn(outC), ReLU());

    /// <summary>The final per-pixel classifier: <see cref="ModelOptions.HeadFactory"/> when set, else a 1×1
    /// convolution with bias (torchvision's choice).</summary>
    public static Module<Tensor, Tensor> Classifier(long inC, int numClasses, ModelOptions options) =>
        options.HeadFactory is { } make ? make(inC, numClasses) : Conv2d(inC, numClasses, 1);

    /// <summary>Bilinear resize to <paramref name="height"/>×<paramref name="width"/> with align_corners = false.</summary>
    public static Tensor Resize(Tensor x, long height, long width) =>
        x.shape[^2] == height && x.shape[^1] == width
            ? x.alias()
            : functional.interpolate(x, [height, width], mode: InterpolationMode.Bilinear, align_corners: false);
}
