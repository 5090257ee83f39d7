using Seg.Models.Backbones;
using Seg.Models.Export;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Seg.Models.Segmentation;

/// <summary>
/// U-Net decoder on a ResNet-34 encoder (the "ResNet-UNet" of segmentation_models_pytorch): the encoder is a
/// torchvision resnet34 without <c>fc</c> (keys <c>encoder.*</c>, so ImageNet weights load with
/// <see cref="StateDict.LoadBackbone"/>); five decoder stages (256, 128, 64, 32, 16 channels; keys
/// <c>decoder.{i}.*</c>) each up-sample bilinearly to the next skip's size (layer3, layer2, layer1, stem, input),
/// concatenate it and apply a double convolution; <c>classifier</c> maps 16 channels to logits. Any input size works.
/// </summary>
public sealed class UNetResNet34 : Module<Tensor, Tensor>, ISegmentationModel, IOnnxExportable
{
    static readonly long[] DecoderChannels = [256, 128, 64, 32, 16];

    readonly ResNet encoder;
    readonly ModuleList<Sequential> decoder;
    readonly Module<Tensor, Tensor> classifier;

    /// <summary>Builds the model with random weights.</summary>
    /// <param name="numClasses">Output channels of the classifier.</param>
    /// <param name="options">Input channels and classifier factory.</param>
    public UNetResNet34(int numClasses, ModelOptions options) : base(nameof(UNetResNet34))
    {
        encoder = ResNetCatalog.Backbone(34, [false, false, false], options.InChannels);
        long[] skipChannels = [encoder.LayerChannels[2], encoder.LayerChannels[1], encoder.LayerChannels[0], 64, 0];
        var blocks = new Sequential[DecoderChannels.Length];
        long inC = encoder.OutChannels;
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

    /// <summary>Logits [B, numClasses, H, W] at the input's resolution, for any input size.</summary>
    public override Tensor forward(Tensor input)
    {
        var f = encoder.Features(input);
        Tensor?[] skips = [f.Layer3, f.Layer2, f.Layer1, f.Stem, null];
        var y = f.Layer4;
        for (int i = 0; i < skips.Length; i++)
        {
            var skip = skips[i];
            long h = skip?.shape[^2] ?? input.shape[^2], w = skip?.shape[^1] ?? input.shape[^1];
            y = Layers.Resize(y, h, w);
            if (skip is not null) y = cat([y, skip], 1);
            y = decoder[i].forward(y);
        }
        return classifier.forward(y);
    }

    string IOnnxExportable.ExportOnnx(OnnxGraphBuilder g, string path, string input)
    {
        string P(string name) => OnnxGraphBuilder.Join(path, name);
        g.Visit(decoder);
        var f = encoder.ExportFeatures(g, P("encoder"), input);
        string?[] skips = [f.Layer3, f.Layer2, f.Layer1, f.Stem, null];
        var y = f.Layer4;
        for (int i = 0; i < skips.Length; i++)
        {
            y = g.ResizeLike(P($"resize{i}"), y, skips[i] ?? input);
            if (skips[i] is { } skip) y = g.ConcatChannels(P($"cat{i}"), y, skip);
            y = g.Module(decoder[i], P($"decoder.{i}"), y);
        }
        return g.Module(classifier, P("classifier"), y);
    }
}
