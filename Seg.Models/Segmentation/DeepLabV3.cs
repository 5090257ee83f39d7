using Seg.Models.Backbones;
using Seg.Models.Export;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Seg.Models.Segmentation;

/// <summary>
/// DeepLabV3 (Chen et al. 2017) exactly as torchvision's <c>models.segmentation.deeplabv3_resnet50/101</c>: a ResNet
/// backbone with layer3 and layer4 dilated (output stride 8, no <c>fc</c>; keys <c>backbone.*</c>), a
/// <see cref="Heads.DeepLabHead"/> (<c>classifier.*</c>, ASPP rates 12/24/36) and an optional FCN auxiliary head
/// on layer3 (<c>aux_classifier.*</c>). Logits are resized to the input with bilinear, align_corners = false.
/// </summary>
public sealed class DeepLabV3 : Module<Tensor, Tensor>, ISegmentationModel, IOnnxExportable
{
    readonly ResNet backbone;
    readonly Sequential classifier;
    readonly Sequential? aux_classifier;

    /// <summary>Builds the model with random weights; load weights with <see cref="StateDict"/>.</summary>
    /// <param name="resnetDepth">50 or 101.</param>
    /// <param name="numClasses">Output channels of the classifier (and of the aux head).</param>
    /// <param name="options">Input channels, aux head, classifier factory.</param>
    public DeepLabV3(int resnetDepth, int numClasses, ModelOptions options) : base(nameof(DeepLabV3))
    {
        backbone = ResNetCatalog.Backbone(resnetDepth, [false, true, true], options.InChannels);
        classifier = Heads.DeepLabHead(backbone.OutChannels, numClasses, [12, 24, 36], options);
        register_module(nameof(backbone), backbone);
        register_module(nameof(classifier), classifier);
        if (options.AuxHead)
        {
            aux_classifier = Heads.FcnHead(backbone.LayerChannels[2], numClasses);
            register_module(nameof(aux_classifier), aux_classifier);
        }
    }

    /// <inheritdoc/>
    public string? BackbonePrefix => "backbone.";
    /// <inheritdoc/>
    public bool HasAuxHead => aux_classifier is not null;

    /// <summary>Logits [B, numClasses, H, W] at the input's resolution (the aux head is not run).</summary>
    public override Tensor forward(Tensor input) => ForwardWithAux(input).Out;

    /// <inheritdoc/>
    public (Tensor Out, Tensor? Aux) ForwardWithAux(Tensor input)
    {
        long h = input.shape[^2], w = input.shape[^1];
        var f = backbone.Features(input);
        var outLogits = Layers.Resize(classifier.forward(f.Layer4), h, w);
        var aux = aux_classifier is null ? null : Layers.Resize(aux_classifier.forward(f.Layer3), h, w);
        return (outLogits, aux);
    }

    /// <summary>The main logits only, as <c>forward</c>: the auxiliary head is a training aid.</summary>
    string IOnnxExportable.ExportOnnx(OnnxGraphBuilder g, string path, string input)
    {
        string P(string name) => OnnxGraphBuilder.Join(path, name);
        var f = backbone.ExportFeatures(g, P("backbone"), input);
        if (aux_classifier is not null) g.Unused(aux_classifier, P("aux_classifier"));
        return g.ResizeLike(P("resize"), g.Module(classifier, P("classifier"), f.Layer4), input);
    }
}
