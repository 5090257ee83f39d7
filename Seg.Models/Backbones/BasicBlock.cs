using Seg.Models.Export;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Seg.Models.Backbones;

/// <summary>ResNet-18/34 residual block: two 3×3 convolutions (He et al. 2016). Names match torchvision's
/// <c>BasicBlock</c>: <c>conv1</c>, <c>bn1</c>, <c>conv2</c>, <c>bn2</c>, <c>downsample</c>. torchvision refuses
/// dilation here; for DeepLabV3+ on resnet18/34 both 3×3 convolutions are dilated (as segmentation_models_pytorch
/// does), which changes no parameter.</summary>
public sealed class BasicBlock : Module<Tensor, Tensor>, IOnnxExportable
{
    /// <summary>Output channels per input "plane".</summary>
    public const int Expansion = 1;

    readonly Conv2d conv1, conv2;
    // Declared as modules, not BatchNorm2d (sealed), so that SyncBatchNorm.convert_sync_batchnorm can replace them.
    readonly Module<Tensor, Tensor> bn1, bn2;
    readonly Sequential? downsample;

    /// <summary>Builds the block as torchvision does.</summary>
    /// <param name="inplanes">Input channels.</param>
    /// <param name="planes">Output channels (× <see cref="Expansion"/>).</param>
    /// <param name="stride">Stride of the first 3×3 convolution.</param>
    /// <param name="downsample">Projection of the identity path when the shape changes, or null.</param>
    /// <param name="dilation">Must be 1: torchvision's BasicBlock has no dilated form.</param>
    /// <exception cref="NotSupportedException"><paramref name="dilation"/> is not 1.</exception>
    public BasicBlock(long inplanes, long planes, long stride, Sequential? downsample, long dilation) : base(nameof(BasicBlock))
    {
        conv1 = Layers.Conv3x3(inplanes, planes, stride, dilation);
        bn1 = Layers.Bn(planes);
        conv2 = Layers.Conv3x3(planes, planes, dilation: dilation);
        bn2 = Layers.Bn(planes);
        this.downsample = downsample;
        register_module(nameof(conv1), conv1);
        register_module(nameof(bn1), bn1);
        register_module(nameof(conv2), conv2);
        register_module(nameof(bn2), bn2);
        if (downsample is not null) register_module(nameof(downsample), downsample);
    }

    /// <summary>relu(bn2(conv2(relu(bn1(conv1(x))))) + identity), the identity projected by <c>downsample</c> when set.</summary>
    public override Tensor forward(Tensor x)
    {
        var identity = downsample is null ? x : downsample.forward(x);
        var y = functional.relu(bn1.forward(conv1.forward(x)));
        y = bn2.forward(conv2.forward(y));
        return functional.relu(y.add_(identity));
    }

    string IOnnxExportable.ExportOnnx(OnnxGraphBuilder g, string path, string x)
    {
        string P(string name) => OnnxGraphBuilder.Join(path, name);
        var identity = downsample is null ? x : g.Module(downsample, P("downsample"), x);
        var y = g.Op("Relu", P("relu1"), [g.Module(bn1, P("bn1"), g.Module(conv1, P("conv1"), x))]);
        y = g.Module(bn2, P("bn2"), g.Module(conv2, P("conv2"), y));
        return g.Op("Relu", P("relu"), [g.Op("Add", P("add"), [y, identity])]);
    }
}
