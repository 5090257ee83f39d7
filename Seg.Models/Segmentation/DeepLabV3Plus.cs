using Seg.Models.Backbones;
using Seg.Models.Export;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Seg.Models.Segmentation;

/// <summary>
/// DeepLabV3+ (Chen, Zhu, Papandreou, Schroff and Adam, "Encoder-Decoder with Atrous Separable Convolution for
/// Semantic Image Segmentation", ECCV 2018) on a torchvision encoder (<c>deeplabv3plus_&lt;encoder&gt;</c>): ASPP on the
/// encoder's deepest (stride-32) stage, a 48-channel 1×1 projection of its stride-4 stage (the low-level features),
/// concatenation after bilinear up-sampling, two 3×3 256-channel convolutions, and the final classifier. Output
/// stride 16 (the stride-32 step dilated, ASPP rates 6/12/18) or 8 (both stride-16 and 32 steps dilated, rates
/// 12/24/36); MobileNetV3 only dilates to 16, ConvNeXt cannot dilate and runs ASPP at stride 32 (rates 6/12/18).
/// Keys: <c>backbone.*</c> (the torchvision encoder), <c>classifier.project.*</c>, <c>classifier.aspp.*</c>,
/// <c>classifier.classifier.*</c> (the layout of the widely used VainF/DeepLabV3Plus-Pytorch), optional
/// <c>aux_classifier.*</c> (FCN head on the stride-16 stage: ResNet's layer3).
/// </summary>
public sealed class DeepLabV3Plus : Module<Tensor, Tensor>, ISegmentationModel, IOnnxExportable
{
    readonly Module<Tensor, Tensor> backbone;
    readonly DeepLabV3PlusHead classifier;
    readonly Sequential? aux_classifier;

    /// <summary>DeepLabV3+ on <paramref name="encoderName"/> (one of <see cref="EncoderCatalog.Names"/>).</summary>
    public DeepLabV3Plus(string encoderName, int numClasses, ModelOptions options) : base(nameof(DeepLabV3Plus))
    {
        if (options.OutputStride is not (16 or 8))
            throw new ArgumentException($"OutputStride must be 16 or 8 for DeepLabV3+, got {options.OutputStride}.", nameof(options));
        long[] rates = EncoderCatalog.EffectiveOutputStride(encoderName, options.OutputStride) == 8 ? [12, 24, 36] : [6, 12, 18];
        backbone = EncoderCatalog.Create(encoderName, EncoderCatalog.EffectiveOutputStride(encoderName, options.OutputStride), options.InChannels);
        var stages = ((IEncoder)backbone).StageChannels;
        classifier = new DeepLabV3PlusHead(stages[4], stages[1], numClasses, rates, options);
        register_module(nameof(backbone), backbone);
        register_module(nameof(classifier), classifier);
        if (options.AuxHead)
        {
            aux_classifier = Heads.FcnHead(stages[3], numClasses);
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
        var s = ((IEncoder)backbone).Stages(input);
        var outLogits = Layers.Resize(classifier.Decode(s[1]!, s[4]!), h, w);
        var aux = aux_classifier is null ? null : Layers.Resize(aux_classifier.forward(s[3]!), h, w);
        return (outLogits, aux);
    }

    /// <summary>The main logits only, as <c>forward</c>: the auxiliary head is a training aid.</summary>
    string IOnnxExportable.ExportOnnx(OnnxGraphBuilder g, string path, string input)
    {
        string P(string name) => OnnxGraphBuilder.Join(path, name);
        var s = ((IEncoderExport)backbone).ExportStages(g, P("backbone"), input);
        if (aux_classifier is not null) g.Unused(aux_classifier, P("aux_classifier"));
        return g.ResizeLike(P("resize"), classifier.ExportDecode(g, P("classifier"), s[1]!, s[4]!), input);
    }
}

/// <summary>The DeepLabV3+ decoder: <c>project</c> (low-level 1×1 to 48 channels), <c>aspp</c>, <c>classifier</c>
/// (two 3×3 256-channel conv/BN/ReLU, then the final per-pixel classifier at child <c>6</c>).</summary>
public sealed class DeepLabV3PlusHead : Module<Tensor, Tensor>
{
    readonly Sequential project;
    readonly Aspp aspp;
    readonly Sequential classifier;

    /// <summary>Builds the decoder.</summary>
    /// <param name="inChannels">Channels of the high-level (layer4) features fed to the ASPP.</param>
    /// <param name="lowLevelChannels">Channels of the low-level (layer1) features.</param>
    /// <param name="numClasses">Output channels of the final classifier.</param>
    /// <param name="rates">ASPP dilation rates.</param>
    /// <param name="options">Supplies <see cref="ModelOptions.HeadFactory"/> for the final classifier.</param>
    public DeepLabV3PlusHead(long inChannels, long lowLevelChannels, int numClasses, IReadOnlyList<long> rates, ModelOptions options)
        : base(nameof(DeepLabV3PlusHead))
    {
        project = Sequential(Layers.Conv1x1(lowLevelChannels, 48), Layers.Bn(48), ReLU());
        aspp = new Aspp(inChannels, rates);
        classifier = Sequential(
            Layers.Conv3x3(256 + 48, 256), Layers.Bn(256), ReLU(),
            Layers.Conv3x3(256, 256), Layers.Bn(256), ReLU(),
            Layers.Classifier(256, numClasses, options));
        register_module(nameof(project), project);
        register_module(nameof(aspp), aspp);
        register_module(nameof(classifier), classifier);
    }

    /// <summary>Logits at the low-level features' resolution.</summary>
    public Tensor Decode(Tensor lowLevel, Tensor high)
    {
        var low = project.forward(lowLevel);
        var context = Layers.Resize(aspp.forward(high), low.shape[^2], low.shape[^1]);
        return classifier.forward(cat([low, context], 1));
    }

    /// <summary>The ONNX counterpart of <see cref="Decode"/>.</summary>
    internal string ExportDecode(OnnxGraphBuilder g, string path, string lowLevel, string high)
    {
        string P(string name) => OnnxGraphBuilder.Join(path, name);
        g.Visit(this);
        var low = g.Module(project, P("project"), lowLevel);
        var context = g.ResizeLike(P("resize"), g.Module(aspp, P("aspp"), high), low);
        return g.Module(classifier, P("classifier"), g.ConcatChannels(P("cat"), low, context));
    }

    /// <summary>Not used on its own: the head needs two inputs; call <see cref="Decode"/>.</summary>
    public override Tensor forward(Tensor x) =>
        throw new NotSupportedException("DeepLabV3PlusHead needs low-level and high-level features: call Decode.");
}
