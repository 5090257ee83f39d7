using Seg.Models.Blocks;
using Seg.Models.Export;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Seg.Models.Backbones;

/// <summary>
/// ConvNeXt (Liu et al., "A ConvNet for the 2020s", CVPR 2022) as torchvision's <c>convnext_tiny</c> and
/// <c>convnext_small</c>: <c>features.0</c> a 4×4 stride-4 patchify conv with LayerNorm2d, stages at
/// <c>features.1/3/5/7</c> (96, 192, 384, 768 channels; 3, 3, 9 or 27, 3 blocks), down-sampling (LayerNorm2d, 2×2
/// stride-2 conv) at <c>features.2/4/6</c>; <c>classifier</c> (LayerNorm2d, Flatten, Linear) after the average pool.
/// LayerNorm eps 1e-6, layer scale initialised to 1e-6, stochastic depth 0.1 (tiny) or 0.4 (small) in training.
/// As an encoder there is no stride-2 stage: its stages are at strides 4, 8, 16 and 32. It has no dilated form.
/// </summary>
public sealed class ConvNeXt : Module<Tensor, Tensor>, IOnnxExportable, IEncoder, IEncoderExport
{
    static readonly long[] Widths = [96, 192, 384, 768];
    readonly Sequential features;
    readonly Sequential? classifier;
    readonly int[] stageEnds = [-1, 1, 3, 5, 7];

    /// <param name="small">convnext_small (27 blocks in the third stage) instead of tiny (9).</param>
    /// <param name="numClasses">Classifier outputs; 0 for an encoder without <c>classifier</c>.</param>
    /// <param name="inChannels">Image channels.</param>
    public ConvNeXt(bool small, int numClasses, long inChannels = 3) : base(nameof(ConvNeXt))
    {
        int[] depths = small ? [3, 3, 27, 3] : [3, 3, 9, 3];
        double stochasticDepth = small ? 0.4 : 0.1;
        const double eps = 1e-6;
        var layers = new List<Module<Tensor, Tensor>>
        {
            Sequential(Conv2d(inChannels, Widths[0], 4, stride: 4), new ChannelLayerNorm(Widths[0], eps, channelsFirst: true)),
        };
        int total = depths.Sum(), blockId = 0;
        for (int s = 0; s < 4; s++)
        {
            var stage = new List<Module<Tensor, Tensor>>();
            for (int i = 0; i < depths[s]; i++)
                stage.Add(new CNBlock(Widths[s], stochasticDepth * blockId++ / (total - 1.0)));
            layers.Add(Sequential(stage));
            if (s < 3) layers.Add(Sequential(new ChannelLayerNorm(Widths[s], eps, channelsFirst: true), Conv2d(Widths[s], Widths[s + 1], 2, stride: 2)));
        }
        features = Sequential(layers);
        register_module(nameof(features), features);
        if (numClasses > 0)
        {
            classifier = Sequential(new ChannelLayerNorm(Widths[3], eps, channelsFirst: true), Flatten(1), Linear(Widths[3], numClasses));
            register_module(nameof(classifier), classifier);
        }
    }

    /// <summary>Channels of the last feature map (768).</summary>
    public long OutChannels => Widths[^1];

    /// <summary>Stages: none at stride 2, then <c>features.1/3/5/7</c>.</summary>
    public IReadOnlyList<long> StageChannels => [0, .. Widths];

    /// <inheritdoc/>
    public Tensor?[] Stages(Tensor x) => MobileNetV3.RunFeatures(MobileNetV3.ChildrenOf(features), stageEnds, x);

    string?[] IEncoderExport.ExportStages(OnnxGraphBuilder g, string path, string x)
    {
        g.Visit(features);
        return MobileNetV3.ExportFeatures(g, MobileNetV3.ChildrenOf(features), OnnxGraphBuilder.Join(path, "features"), stageEnds, x);
    }

    /// <summary>Class logits [B, numClasses]; without a classifier, the last feature map.</summary>
    public override Tensor forward(Tensor x) => ClassifierHead.Forward(features.forward(x), classifier, flatten: false);

    string IOnnxExportable.ExportOnnx(OnnxGraphBuilder g, string path, string x) =>
        ClassifierHead.Export(g, path, g.Module(features, OnnxGraphBuilder.Join(path, "features"), x), classifier, flatten: false);
}

/// <summary>ConvNeXt's block (torchvision's <c>CNBlock</c>): depthwise 7×7 conv, to channels-last, LayerNorm, Linear to
/// 4×, GELU, Linear back, to channels-first (<c>block.0..6</c>), times the per-channel <c>layer_scale</c>
/// [C, 1, 1], through stochastic depth, plus the input.</summary>
internal sealed class CNBlock : Module<Tensor, Tensor>, IOnnxExportable
{
    readonly Parameter layer_scale;
    readonly Sequential block;
    readonly StochasticDepth stochastic_depth;

    public CNBlock(long dim, double dropProbability) : base(nameof(CNBlock))
    {
        block = Sequential(
            Conv2d(dim, dim, 7, padding: 3, groups: dim),
            new Permute(0, 2, 3, 1),
            new ChannelLayerNorm(dim, 1e-6, channelsFirst: false),
            Linear(dim, 4 * dim),
            new Activation(ActivationKind.GELU),
            Linear(4 * dim, dim),
            new Permute(0, 3, 1, 2));
        layer_scale = Parameter(full(dim, 1, 1, 1e-6));
        stochastic_depth = new StochasticDepth(dropProbability);
        register_parameter(nameof(layer_scale), layer_scale);
        register_module(nameof(block), block);
        register_module(nameof(stochastic_depth), stochastic_depth);
    }

    public override Tensor forward(Tensor x) => stochastic_depth.forward(layer_scale * block.forward(x)) + x;

    string IOnnxExportable.ExportOnnx(OnnxGraphBuilder g, string path, string x)
    {
        g.Visit(stochastic_depth);
        var y = g.Module(block, OnnxGraphBuilder.Join(path, "block"), x);
        y = g.Op("Mul", OnnxGraphBuilder.Join(path, "layer_scale"), [g.Weight(OnnxGraphBuilder.Join(path, "layer_scale"), layer_scale), y]);
        return g.Op("Add", OnnxGraphBuilder.Join(path, "add"), [y, x]);
    }
}
