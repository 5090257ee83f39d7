using Seg.Models.Export;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Seg.Models.Segmentation;

/// <summary>
/// Lite R-ASPP (Howard et al., "Searching for MobileNetV3", ICCV 2019) as torchvision's
/// <c>lraspp_mobilenet_v3_large</c>: the dilated MobileNetV3-Large backbone (<c>backbone.0..16</c>), and
/// <c>classifier</c> = <see cref="LRASPPHead"/> on block 16 (stride 16, 960 channels) and block 4 (stride 8,
/// 40 channels); logits resized to the input. torchvision's LR-ASPP has no auxiliary head.
/// </summary>
public sealed class LRASPP : Module<Tensor, Tensor>, ISegmentationModel, IOnnxExportable
{
    readonly SegmentationBackbone backbone;
    readonly LRASPPHead classifier;

    /// <summary>LR-ASPP with <paramref name="numClasses"/> outputs (<see cref="ModelOptions.AuxHead"/> is refused).</summary>
    public LRASPP(int numClasses, ModelOptions options) : base(nameof(LRASPP))
    {
        if (options.AuxHead) throw new ArgumentException("lraspp_mobilenet_v3_large has no auxiliary head (as in torchvision); set aux_head: false.", nameof(options));
        backbone = new SegmentationBackbone("mobilenet_v3_large", options.InChannels);
        classifier = new LRASPPHead(backbone.AuxChannels, backbone.OutChannels, numClasses, 128, options);
        register_module(nameof(backbone), backbone);
        register_module(nameof(classifier), classifier);
    }

    /// <inheritdoc/>
    public string? BackbonePrefix => "backbone.";

    /// <inheritdoc/>
    public bool HasAuxHead => false;

    /// <inheritdoc/>
    public (Tensor Out, Tensor? Aux) ForwardWithAux(Tensor input) => (forward(input), null);

    /// <summary>Logits [B, numClasses, H, W].</summary>
    public override Tensor forward(Tensor input)
    {
        var (high, low) = backbone.Run(input);
        return Layers.Resize(classifier.Decode(low, high), input.shape[^2], input.shape[^1]);
    }

    string IOnnxExportable.ExportOnnx(OnnxGraphBuilder g, string path, string input)
    {
        string P(string name) => OnnxGraphBuilder.Join(path, name);
        var (high, low) = backbone.Export(g, P("backbone"), input);
        return g.ResizeLike(P("resize"), classifier.ExportDecode(g, P("classifier"), low, high), input);
    }
}

/// <summary>torchvision's <c>LRASPPHead</c>: <c>cbr</c> (1×1 conv, BN, ReLU) on the high features, gated by
/// <c>scale</c> (global pool, 1×1 conv, sigmoid), resized to the low features, classified by <c>high_classifier</c>
/// and added to <c>low_classifier</c> of the low features.</summary>
public sealed class LRASPPHead : Module<Tensor, Tensor>
{
    readonly Sequential cbr, scale;
    readonly Module<Tensor, Tensor> low_classifier, high_classifier;

    /// <summary>The head; the two classifiers are 1×1 convolutions, or <see cref="ModelOptions.HeadFactory"/>'s modules.</summary>
    public LRASPPHead(long lowChannels, long highChannels, int numClasses, long interChannels, ModelOptions options) : base(nameof(LRASPPHead))
    {
        cbr = Sequential(Layers.Conv1x1(highChannels, interChannels), Layers.Bn(interChannels), ReLU());
        scale = Sequential(AdaptiveAvgPool2d(1), Layers.Conv1x1(highChannels, interChannels), new Blocks.Activation(Blocks.ActivationKind.Sigmoid));
        low_classifier = Layers.Classifier(lowChannels, numClasses, options);
        high_classifier = Layers.Classifier(interChannels, numClasses, options);
        register_module(nameof(cbr), cbr);
        register_module(nameof(scale), scale);
        register_module(nameof(low_classifier), low_classifier);
        register_module(nameof(high_classifier), high_classifier);
    }

    /// <summary>Logits at the low features' resolution.</summary>
    public Tensor Decode(Tensor low, Tensor high)
    {
        var x = cbr.forward(high) * scale.forward(high);
        x = Layers.Resize(x, low.shape[^2], low.shape[^1]);
        return low_classifier.forward(low) + high_classifier.forward(x);
    }

    internal string ExportDecode(OnnxGraphBuilder g, string path, string low, string high)
    {
        string P(string name) => OnnxGraphBuilder.Join(path, name);
        g.Visit(this);
        var x = g.Op("Mul", P("gate"), [g.Module(cbr, P("cbr"), high), g.Module(scale, P("scale"), high)]);
        x = g.ResizeLike(P("resize"), x, low);
        return g.Op("Add", P("add"), [g.Module(low_classifier, P("low_classifier"), low), g.Module(high_classifier, P("high_classifier"), x)]);
    }

    /// <summary>Not used on its own: the head needs two inputs; call <see cref="Decode"/>.</summary>
    public override Tensor forward(Tensor x) =>
        throw new NotSupportedException("LRASPPHead needs low-level and high-level features: call Decode.");
}
