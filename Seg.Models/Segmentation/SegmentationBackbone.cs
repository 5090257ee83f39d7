using Seg.Models.Backbones;
using Seg.Models.Export;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Seg.Models.Segmentation;

/// <summary>
/// The backbone of torchvision's FCN, DeepLabV3 and LR-ASPP models (key prefix <c>backbone.</c>): a ResNet/ResNeXt
/// with layer3 and layer4 dilated (output stride 8; out = layer4, aux = layer3), or MobileNetV3-Large's
/// <c>features</c> with the last stage dilated (output stride 16; children named <c>0</c>..<c>16</c> as torchvision's
/// IntermediateLayerGetter keeps them; out = child 16, aux/low-level = child 4, stride 8).
/// </summary>
internal sealed class SegmentationBackbone : Module<Tensor, Tensor>, IOnnxExportable
{
    readonly ResNet? resnet;
    readonly int[] taps = [];
    readonly (string Name, Module<Tensor, Tensor> Module)[] blocks = [];

    /// <summary>Channels of the main (deepest) features.</summary>
    public long OutChannels { get; }

    /// <summary>Channels of the auxiliary / low-level features.</summary>
    public long AuxChannels { get; }

    /// <summary>The module to register as <c>backbone</c>: the ResNet itself, or this wrapper around MobileNetV3's blocks.</summary>
    public Module<Tensor, Tensor> Registered => resnet is null ? this : resnet;

    /// <param name="name">resnet50, resnet101, resnext50_32x4d, resnext101_32x8d or mobilenet_v3_large.</param>
    /// <param name="inChannels">Image channels.</param>
    public SegmentationBackbone(string name, long inChannels) : base(nameof(SegmentationBackbone))
    {
        if (name == "mobilenet_v3_large")
        {
            var (features, _) = MobileNetV3.BuildFeatures(large: true, dilated: true, inChannels);
            blocks = MobileNetV3.ChildrenOf(features);
            foreach (var (childName, child) in blocks) register_module(childName, child);
            int last = features.Count - 1, low = MobileNetV3.LowLevelIndex(large: true);
            taps = [last, low];
            var channels = MobileNetV3.FeatureChannels(large: true);
            (OutChannels, AuxChannels) = (channels[last], channels[low]);
        }
        else
        {
            resnet = ResNetCatalog.Backbone(name, [false, true, true], inChannels);
            (OutChannels, AuxChannels) = (resnet.LayerChannels[3], resnet.LayerChannels[2]);
        }
    }

    /// <summary>Main and auxiliary features.</summary>
    public (Tensor Out, Tensor Aux) Run(Tensor x)
    {
        if (resnet is not null)
        {
            var f = resnet.Features(x);
            return (f.Layer4, f.Layer3);
        }
        var outs = MobileNetV3.RunFeatures(blocks, taps, x);
        return (outs[0]!, outs[1]!);
    }

    /// <summary>The ONNX counterpart of <see cref="Run"/>; <paramref name="path"/> is the backbone's key prefix.</summary>
    public (string Out, string Aux) Export(OnnxGraphBuilder g, string path, string x)
    {
        if (resnet is not null)
        {
            var f = resnet.ExportFeatures(g, path, x);
            return (f.Layer4, f.Layer3);
        }
        g.Visit(this);
        var outs = MobileNetV3.ExportFeatures(g, blocks, path, taps, x);
        return (outs[0]!, outs[1]!);
    }

    /// <summary>The main features.</summary>
    public override Tensor forward(Tensor x) => Run(x).Out;

    string IOnnxExportable.ExportOnnx(OnnxGraphBuilder g, string path, string x) => Export(g, path, x).Out;
}
