using Seg.Models.Backbones;
using Seg.Models.Export;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Seg.Models.Segmentation;

/// <summary>
/// U-Net decoder on a torchvision encoder (<c>unet_&lt;encoder&gt;</c>, the encoder–decoder U-Net of
/// segmentation_models_pytorch): the encoder without its classifier (keys <c>encoder.*</c>, so ImageNet weights load
/// with <see cref="StateDict.LoadBackbone"/>); five decoder stages (256, 128, 64, 32, 16 channels; keys
/// <c>decoder.{i}.*</c>), each up-sampling bilinearly to the next skip's size, concatenating it and applying a double
/// convolution; <c>classifier</c> maps 16 channels to logits. Skips, deepest first: the encoder's stride-16, 8, 4
/// and 2 stages, then the input's size without a skip (ConvNeXt has no stride-2 stage: its fourth step already
/// up-samples to the input's size).
/// Any input size works.
/// </summary>
public sealed class EncoderUNet : Module<Tensor, Tensor>, ISegmentationModel, IOnnxExportable
{
    static readonly long[] DecoderChannels = [256, 128, 64, 32, 16];

    readonly Module<Tensor, Tensor> encoder;
    readonly ModuleList<Sequential> decoder;
    readonly Module<Tensor, Tensor> classifier;

    /// <summary>A U-Net on <paramref name="encoderName"/> (one of <see cref="EncoderCatalog.Names"/>).</summary>
    public EncoderUNet(string encoderName, int numClasses, ModelOptions options) : base(nameof(EncoderUNet))
    {
        encoder = EncoderCatalog.Create(encoderName, 32, options.InChannels);
        var stages = ((IEncoder)encoder).StageChannels;
        long[] skipChannels = [stages[3], stages[2], stages[1], stages[0], 0];
        var blocks = new Sequential[DecoderChannels.Length];
        long inC = stages[4];
        for (int i = 0; i < blocks.Length; i++)
        {
            blocks[i] = Layers.DoubleConv(inC + skipChannels[i], DecoderChannels[i]);
            inC = DecoderChannels[i];
        }
        decoder = ModuleList(blocks);
        classifier = Layers.Classifier(DecoderChannels[^1], numClasses, options);
        register_module(nameof(encoder), encoder);
        register_module(nameof(decoder), decoder);
        register_module(nameof(classifier), classifier);
    }

    /// <inheritdoc/>
    public string? BackbonePrefix => "encoder.";

    /// <inheritdoc/>
    public bool HasAuxHead => false;

    /// <inheritdoc/>
    public (Tensor Out, Tensor? Aux) ForwardWithAux(Tensor input) => (forward(input), null);

    /// <summary>Logits [B, numClasses, H, W].</summary>
    public override Tensor forward(Tensor input)
    {
        var s = ((IEncoder)encoder).Stages(input);
        Tensor?[] skips = [s[3], s[2], s[1], s[0], null];
        var y = s[4]!;
        for (int i = 0; i < skips.Length; i++)
        {
            var like = skips[i] ?? input;
            y = Layers.Resize(y, like.shape[^2], like.shape[^1]);
            if (skips[i] is { } skip) y = cat([y, skip], 1);
            y = decoder[i].forward(y);
        }
        return classifier.forward(y);
    }

    string IOnnxExportable.ExportOnnx(OnnxGraphBuilder g, string path, string input)
    {
        string P(string name) => OnnxGraphBuilder.Join(path, name);
        g.Visit(decoder);
        var s = ((IEncoderExport)encoder).ExportStages(g, P("encoder"), input);
        string?[] skips = [s[3], s[2], s[1], s[0], null];
        var y = s[4]!;
        for (int i = 0; i < skips.Length; i++)
        {
            y = g.ResizeLike(P($"resize{i}"), y, skips[i] ?? input);
            if (skips[i] is { } skip) y = g.ConcatChannels(P($"cat{i}"), y, skip);
            y = g.Module(decoder[i], P($"decoder.{i}"), y);
        }
        return g.Module(classifier, P("classifier"), y);
    }
}
