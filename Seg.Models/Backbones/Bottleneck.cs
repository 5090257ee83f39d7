using Seg.Models.Export;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Seg.Models.Backbones;

/// <summary>ResNet-50/101 bottleneck block (1×1 → 3×3 → 1×1, stride on the 3×3 as in torchvision's "ResNet V1.5").
/// Names match torchvision: <c>conv1..3</c>, <c>bn1..3</c>, <c>downsample</c>. With <c>groups</c> &gt; 1 the 3×3 is a
/// grouped convolution of width planes·widthPerGroup/64·groups (ResNeXt, Xie et al., CVPR 2017).</summary>
public sealed class Bottleneck : Module<Tensor, Tensor>, IOnnxExportable
{
    /// <summary>Output channels per input "plane".</summary>
    public const int Expansion = 4;

    readonly Conv2d conv1, conv2, conv3;
    // Declared as modules, not BatchNorm2d (sealed), so that SyncBatchNorm.convert_sync_batchnorm can replace them.
    readonly Module<Tensor, Tensor> bn1, bn2, bn3;
    readonly Sequential? downsample;

    /// <summary>A block; <paramref name="groups"/> and <paramref name="widthPerGroup"/> as torchvision's
    /// (1 and 64 for ResNet, 32 and 4 or 8 for ResNeXt).</summary>
    public Bottleneck(long inplanes, long planes, long stride, Sequential? downsample, long dilation, long groups = 1, long widthPerGroup = 64)
        : base(nameof(Bottleneck))
    {
        long width = planes * widthPerGroup / 64 * groups;
        conv1 = Layers.Conv1x1(inplanes, width);
        bn1 = Layers.Bn(width);
        conv2 = Layers.Conv3x3(width, width, stride, dilation, groups: groups);
        bn2 = Layers.Bn(width);
        conv3 = Layers.Conv1x1(width, planes * Expansion);
        bn3 = Layers.Bn(planes * Expansion);
        this.downsample = downsample;
        register_module(nameof(conv1), conv1);
        register_module(nameof(bn1), bn1);
        register_module(nameof(conv2), conv2);
        register_module(nameof(bn2), bn2);
        register_module(nameof(conv3), conv3);
        register_module(nameof(bn3), bn3);
        if (downsample is not null) register_module(nameof(downsample), downsample);
    }

    /// <summary>The three convolutions with batch norm and ReLU, plus the (projected) identity, then ReLU.</summary>
    public override Tensor forward(Tensor x)
    {
        var identity = downsample is null ? x : downsample.forward(x);
        var y = functional.relu(bn1.forward(conv1.forward(x)));
        y = functional.relu(bn2.forward(conv2.forward(y)));
        y = bn3.forward(conv3.forward(y));
        return functional.relu(y.add_(identity));
    }

    string IOnnxExportable.ExportOnnx(OnnxGraphBuilder g, string path, string x)
    {
        string P(string name) => OnnxGraphBuilder.Join(path, name);
        var identity = downsample is null ? x : g.Module(downsample, P("downsample"), x);
        var y = g.Op("Relu", P("relu1"), [g.Module(bn1, P("bn1"), g.Module(conv1, P("conv1"), x))]);
        y = g.Op("Relu", P("relu2"), [g.Module(bn2, P("bn2"), g.Module(conv2, P("conv2"), y))]);
        y = g.Module(bn3, P("bn3"), g.Module(conv3, P("conv3"), y));
        return g.Op("Relu", P("relu"), [g.Op("Add", P("add"), [y, identity])]);
    }
}
