using Seg.Models.Export;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Seg.Models.Segmentation;

/// <summary>
/// torchvision's dilated-backbone segmentation models with one head on the deepest features, resized to the input
/// (bilinear, align_corners = false): DeepLabV3 (Chen et al. 2017; <see cref="Heads.DeepLabHead"/>, ASPP rates
/// 12/24/36) and FCN (Long, Shelhamer and Darrell, CVPR 2015; <see cref="Heads.FcnHead"/>), on a ResNet/ResNeXt with
/// layer3 and layer4 dilated (output stride 8) or, for DeepLabV3, MobileNetV3-Large (output stride 16). Keys
/// <c>backbone.*</c>, <c>classifier.*</c> and, with <see cref="ModelOptions.AuxHead"/>, torchvision's FCN auxiliary
/// head <c>aux_classifier.*</c> on layer3 (ResNet) or block 4 (MobileNetV3), exactly as
/// <c>torchvision.models.segmentation.deeplabv3_*</c> / <c>fcn_*</c>.
/// </summary>
public sealed class DeepLabV3 : Module<Tensor, Tensor>, ISegmentationModel, IOnnxExportable
{
    readonly SegmentationBackbone backboneRunner;
    readonly Module<Tensor, Tensor> backbone;
    readonly Sequential classifier;
    readonly Sequential? aux_classifier;

    /// <param name="backboneName">resnet50, resnet101, resnext50_32x4d, resnext101_32x8d or mobilenet_v3_large.</param>
    /// <param name="numClasses">Output classes.</param>
    /// <param name="options">AuxHead, InChannels, HeadFactory.</param>
    /// <param name="fcn">An FCN head instead of DeepLabV3's ASPP head.</param>
    public DeepLabV3(string backboneName, int numClasses, ModelOptions options, bool fcn = false) : base(fcn ? "FCN" : nameof(DeepLabV3))
    {
        backboneRunner = new SegmentationBackbone(backboneName, options.InChannels);
        backbone = backboneRunner.Registered;
        classifier = fcn
            ? Heads.FcnHead(backboneRunner.OutChannels, numClasses, options)
            : Heads.DeepLabHead(backboneRunner.OutChannels, numClasses, [12, 24, 36], options);
        register_module(nameof(backbone), backbone);
        register_module(nameof(classifier), classifier);
        if (options.AuxHead)
        {
            aux_classifier = Heads.FcnHead(backboneRunner.AuxChannels, numClasses);
            register_module(nameof(aux_classifier), aux_classifier);
        }
    }

    /// <inheritdoc/>
    public string? BackbonePrefix => "backbone.";

    /// <inheritdoc/>
    public bool HasAuxHead => aux_classifier is not null;

    /// <summary>Logits [B, numClasses, H, W].</summary>
    public override Tensor forward(Tensor input) => ForwardWithAux(input).Out;

    /// <inheritdoc/>
    public (Tensor Out, Tensor? Aux) ForwardWithAux(Tensor input)
    {
        long h = input.shape[^2], w = input.shape[^1];
        var (features, auxFeatures) = backboneRunner.Run(input);
        var outLogits = Layers.Resize(classifier.forward(features), h, w);
        var aux = aux_classifier is null ? null : Layers.Resize(aux_classifier.forward(auxFeatures), h, w);
        return (outLogits, aux);
    }

    /// <summary>The main logits only, as <c>forward</c>: the auxiliary head is a training aid.</summary>
    string IOnnxExportable.ExportOnnx(OnnxGraphBuilder g, string path, string input)
    {
        string P(string name) => OnnxGraphBuilder.Join(path, name);
        var (features, _) = backboneRunner.Export(g, P("backbone"), input);
        if (aux_classifier is not null) g.Unused(aux_classifier, P("aux_classifier"));
        return g.ResizeLike(P("resize"), g.Module(classifier, P("classifier"), features), input);
    }
}
