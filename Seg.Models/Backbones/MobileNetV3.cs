using Seg.Models.Blocks;
using Seg.Models.Export;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Seg.Models.Backbones;

/// <summary>
/// MobileNetV3 (Howard et al., "Searching for MobileNetV3", ICCV 2019) as torchvision's <c>mobilenet_v3_large</c> and
/// <c>mobilenet_v3_small</c> (width 1.0): <c>features</c> (stem, inverted residual blocks, last 1×1 conv),
/// average pool, <c>classifier</c> (Linear, Hardswish, Dropout 0.2, Linear). BatchNorm eps 0.001, momentum 0.01.
/// With <c>dilated</c>, the stride-32 blocks keep stride 16 and dilate by 2 (torchvision's segmentation backbone).
/// Without a classifier (<c>numClasses = 0</c>) it is an encoder.
/// </summary>
public sealed class MobileNetV3 : Module<Tensor, Tensor>, IOnnxExportable, IEncoder, IEncoderExport
{
    /// <summary>One inverted residual block: input, kernel, expanded and output channels, squeeze-excitation,
    /// Hardswish (else ReLU), stride (torchvision's bneck_conf).</summary>
    internal sealed record Block(long In, long Kernel, long Expanded, long Out, bool SE, bool HS, long Stride);

    static readonly Block[] Large =
    [
        new(16, 3, 16, 16, false, false, 1), new(16, 3, 64, 24, false, false, 2), new(24, 3, 72, 24, false, false, 1),
        new(24, 5, 72, 40, true, false, 2), new(40, 5, 120, 40, true, false, 1), new(40, 5, 120, 40, true, false, 1),
        new(40, 3, 240, 80, false, true, 2), new(80, 3, 200, 80, false, true, 1), new(80, 3, 184, 80, false, true, 1),
        new(80, 3, 184, 80, false, true, 1), new(80, 3, 480, 112, true, true, 1), new(112, 3, 672, 112, true, true, 1),
        new(112, 5, 672, 160, true, true, 2), new(160, 5, 960, 160, true, true, 1), new(160, 5, 960, 160, true, true, 1),
    ];

    static readonly Block[] Small =
    [
        new(16, 3, 16, 16, true, false, 2), new(16, 3, 72, 24, false, false, 2), new(24, 3, 88, 24, false, false, 1),
        new(24, 5, 96, 40, true, true, 2), new(40, 5, 240, 40, true, true, 1), new(40, 5, 240, 40, true, true, 1),
        new(40, 5, 120, 48, true, true, 1), new(48, 5, 144, 48, true, true, 1), new(48, 5, 288, 96, true, true, 2),
        new(96, 5, 576, 96, true, true, 1), new(96, 5, 576, 96, true, true, 1),
    ];

    const double BnEps = 0.001, BnMomentum = 0.01;

    readonly Sequential features;
    readonly Sequential? classifier;
    readonly int[] stageEnds;
    readonly long[] stageChannels;

    /// <summary>Channels of the last feature map (960 large, 576 small).</summary>
    public long OutChannels { get; }

    /// <param name="large">mobilenet_v3_large (else small).</param>
    /// <param name="numClasses">Classifier outputs; 0 for an encoder without <c>classifier</c>.</param>
    /// <param name="dilated">Dilate the last stage instead of striding (output stride 16).</param>
    /// <param name="inChannels">Image channels.</param>
    public MobileNetV3(bool large, int numClasses, bool dilated = false, long inChannels = 3) : base(nameof(MobileNetV3))
    {
        (features, stageEnds) = BuildFeatures(large, dilated, inChannels);
        OutChannels = FeatureChannels(large)[^1];
        stageChannels = stageEnds.Select(i => FeatureChannels(large)[i]).ToArray();
        register_module(nameof(features), features);
        if (numClasses > 0)
        {
            long lastChannel = large ? 1280 : 1024;
            classifier = Sequential(Linear(OutChannels, lastChannel), new Activation(ActivationKind.Hardswish), Dropout(0.2), Linear(lastChannel, numClasses));
            register_module(nameof(classifier), classifier);
        }
    }

    /// <summary>torchvision's <c>features</c> Sequential (children 0..16 large, 0..12 small) and, for strides 2..32,
    /// the index of the last child at that stride (stages follow the blocks' nominal strides, also when dilated).</summary>
    internal static (Sequential Features, int[] StageEnds) BuildFeatures(bool large, bool dilated, long inChannels)
    {
        var blocks = large ? Large : Small;
        var layers = new List<Module<Tensor, Tensor>>
        {
            ConvNormActivation.WithBatchNorm(inChannels, 16, 3, stride: 2, activation: ActivationKind.Hardswish, bnEps: BnEps, bnMomentum: BnMomentum),
        };
        var strideAfter = new List<int> { 2 };
        int stride = 2;
        // torchvision dilates the last three blocks (C4 and after): the first of them is the stride-2 one.
        int firstDilated = blocks.Length - 3;
        for (int i = 0; i < blocks.Length; i++)
        {
            layers.Add(new InvertedResidual(blocks[i], dilated && i >= firstDilated ? 2 : 1));
            stride *= (int)blocks[i].Stride;
            strideAfter.Add(stride);
        }
        long last = blocks[^1].Out * 6;
        layers.Add(ConvNormActivation.WithBatchNorm(blocks[^1].Out, last, 1, activation: ActivationKind.Hardswish, bnEps: BnEps, bnMomentum: BnMomentum));
        strideAfter.Add(stride);
        var ends = new[] { 2, 4, 8, 16, 32 }.Select(s => strideAfter.LastIndexOf(s)).ToArray();
        return (Sequential(layers), ends);
    }

    /// <summary>Output channels of each child of <c>features</c>.</summary>
    internal static long[] FeatureChannels(bool large)
    {
        var blocks = large ? Large : Small;
        return [16, .. blocks.Select(b => b.Out), blocks[^1].Out * 6];
    }

    /// <summary>Index of the stride-8 block torchvision's segmentation models tap (the last stage boundary before
    /// stride 16's start, <c>stage_indices[-4]</c>): 4 for large.</summary>
    internal static int LowLevelIndex(bool large)
    {
        var blocks = large ? Large : Small;
        // stage_indices = [0] + blocks with stride > 1 (feature index i + 1) + [last]; torchvision takes [-4].
        var stageIndices = new List<int> { 0 };
        for (int i = 0; i < blocks.Length; i++) if (blocks[i].Stride > 1) stageIndices.Add(i + 1);
        stageIndices.Add(blocks.Length + 1);
        return stageIndices[^4];
    }

    /// <inheritdoc/>
    public IReadOnlyList<long> StageChannels => stageChannels;

    /// <inheritdoc/>
    public Tensor?[] Stages(Tensor x) => RunFeatures(ChildrenOf(features), stageEnds, x);

    /// <summary>The children of a Sequential with their names, in order.</summary>
    internal static (string Name, Module<Tensor, Tensor> Module)[] ChildrenOf(Sequential features) =>
        features.named_children().Select(c => (c.name, (Module<Tensor, Tensor>)c.module)).ToArray();

    /// <summary>Runs the <paramref name="children"/> in order and keeps the outputs of those at <paramref name="taps"/>
    /// (−1: none); stops after the last tap.</summary>
    internal static Tensor?[] RunFeatures(IReadOnlyList<(string Name, Module<Tensor, Tensor> Module)> children, int[] taps, Tensor x)
    {
        var result = new Tensor?[taps.Length];
        int last = taps.Max();
        for (int i = 0; i <= last; i++)
        {
            x = children[i].Module.forward(x);
            for (int k = 0; k < taps.Length; k++) if (taps[k] == i) result[k] = x;
        }
        return result;
    }

    /// <summary>The ONNX counterpart of <see cref="RunFeatures"/>; children after the last tap are marked unused.</summary>
    internal static string?[] ExportFeatures(OnnxGraphBuilder g, IReadOnlyList<(string Name, Module<Tensor, Tensor> Module)> children,
        string path, int[] taps, string x)
    {
        var result = new string?[taps.Length];
        int last = taps.Max();
        for (int i = 0; i <= last; i++)
        {
            x = g.Module(children[i].Module, OnnxGraphBuilder.Join(path, children[i].Name), x);
            for (int k = 0; k < taps.Length; k++) if (taps[k] == i) result[k] = x;
        }
        for (int i = last + 1; i < children.Count; i++) g.Unused(children[i].Module, OnnxGraphBuilder.Join(path, children[i].Name));
        return result;
    }

    string?[] IEncoderExport.ExportStages(OnnxGraphBuilder g, string path, string x)
    {
        g.Visit(features);
        return ExportFeatures(g, ChildrenOf(features), OnnxGraphBuilder.Join(path, "features"), stageEnds, x);
    }

    /// <summary>Class logits [B, numClasses]; without a classifier, the last feature map.</summary>
    public override Tensor forward(Tensor x) => ClassifierHead.Forward(features.forward(x), classifier);

    string IOnnxExportable.ExportOnnx(OnnxGraphBuilder g, string path, string x) =>
        ClassifierHead.Export(g, path, g.Module(features, OnnxGraphBuilder.Join(path, "features"), x), classifier);
}

/// <summary>MobileNetV3's block (torchvision's <c>InvertedResidual</c>): optional 1×1 expansion, depthwise k×k,
/// optional squeeze-excitation (squeeze to expanded/4 rounded to 8, ReLU, Hardsigmoid gate), 1×1 projection without
/// activation; the input is added back when stride is 1 and the channels are unchanged. Keys <c>block.{i}.*</c>.</summary>
internal sealed class InvertedResidual : Module<Tensor, Tensor>, IOnnxExportable
{
    readonly Sequential block;
    readonly bool residual;

    public InvertedResidual(MobileNetV3.Block c, long dilation) : base(nameof(InvertedResidual))
    {
        const double eps = 0.001, momentum = 0.01;
        var act = c.HS ? ActivationKind.Hardswish : ActivationKind.ReLU;
        residual = c.Stride == 1 && c.In == c.Out;
        var layers = new List<Module<Tensor, Tensor>>();
        if (c.Expanded != c.In)
            layers.Add(ConvNormActivation.WithBatchNorm(c.In, c.Expanded, 1, activation: act, bnEps: eps, bnMomentum: momentum));
        long stride = dilation > 1 ? 1 : c.Stride;
        layers.Add(ConvNormActivation.WithBatchNorm(c.Expanded, c.Expanded, c.Kernel, stride, groups: c.Expanded, dilation: dilation,
            activation: act, bnEps: eps, bnMomentum: momentum));
        if (c.SE)
            layers.Add(new SqueezeExcitation(c.Expanded, MakeDivisible(c.Expanded / 4, 8), ActivationKind.ReLU, ActivationKind.Hardsigmoid));
        layers.Add(ConvNormActivation.WithBatchNorm(c.Expanded, c.Out, 1, activation: null, bnEps: eps, bnMomentum: momentum));
        block = Sequential(layers);
        register_module(nameof(block), block);
    }

    /// <summary>torchvision's <c>_make_divisible</c>: the nearest multiple of <paramref name="divisor"/>, at least
    /// <paramref name="divisor"/>, never more than 10 % below <paramref name="v"/>.</summary>
    internal static long MakeDivisible(double v, long divisor)
    {
        long rounded = Math.Max(divisor, (long)(v + divisor / 2.0) / divisor * divisor);
        return rounded < 0.9 * v ? rounded + divisor : rounded;
    }

    public override Tensor forward(Tensor x)
    {
        var y = block.forward(x);
        return residual ? y + x : y;
    }

    string IOnnxExportable.ExportOnnx(OnnxGraphBuilder g, string path, string x)
    {
        var y = g.Module(block, OnnxGraphBuilder.Join(path, "block"), x);
        return residual ? g.Op("Add", OnnxGraphBuilder.Join(path, "add"), [y, x]) : y;
    }
}

/// <summary>The classifiers' tail shared by MobileNetV3, EfficientNet and ConvNeXt: global average pool, flatten
/// (ConvNeXt's classifier flattens itself), the <c>classifier</c> Sequential (absent for an encoder).</summary>
internal static class ClassifierHead
{
    public static Tensor Forward(Tensor features, Sequential? classifier, bool flatten = true)
    {
        if (classifier is null) return features;
        var pooled = functional.adaptive_avg_pool2d(features, 1);
        return classifier.forward(flatten ? pooled.flatten(1) : pooled);
    }

    public static string Export(OnnxGraphBuilder g, string path, string features, Sequential? classifier, bool flatten = true)
    {
        if (classifier is null) return features;
        var pooled = g.Op("GlobalAveragePool", OnnxGraphBuilder.Join(path, "avgpool"), [features]);
        if (flatten) pooled = g.Op("Flatten", OnnxGraphBuilder.Join(path, "flatten"), [pooled], OnnxGraphBuilder.Int("axis", 1));
        return g.Module(classifier, OnnxGraphBuilder.Join(path, "classifier"), pooled);
    }
}
