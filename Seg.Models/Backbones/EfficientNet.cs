using Seg.Models.Blocks;
using Seg.Models.Export;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Seg.Models.Backbones;

/// <summary>
/// EfficientNet-B0..B4 (Tan and Le, ICML 2019) as torchvision's <c>efficientnet_b0</c>..<c>b4</c>: <c>features.0</c>
/// the stem, <c>features.1..7</c> stages of MBConv blocks (width and depth scaled per variant), <c>features.8</c>
/// the 1×1 head conv (4× the last stage's channels), average pool, <c>classifier</c> (Dropout, Linear).
/// BatchNorm eps 1e-5, SiLU activations, stochastic depth 0.2 scaled linearly over the blocks (training only).
/// As an encoder (<c>numClasses = 0</c>), <c>dilateFrom</c> trades the strides of the stages at and after that
/// stride (16 or 32) for dilation, for DeepLabV3+.
/// </summary>
public sealed class EfficientNet : Module<Tensor, Tensor>, IOnnxExportable, IEncoder, IEncoderExport
{
    // expand ratio, kernel, stride, input channels, output channels, layers (before width/depth scaling).
    static readonly (long Expand, long Kernel, long Stride, long In, long Out, int Layers)[] BaseStages =
    [
        (1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
        (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1),
    ];

    /// <summary>(width multiplier, depth multiplier, dropout) of b0..b4.</summary>
    static readonly (double Width, double Depth, double Dropout)[] Variants =
        [(1.0, 1.0, 0.2), (1.0, 1.1, 0.2), (1.1, 1.2, 0.3), (1.2, 1.4, 0.3), (1.4, 1.8, 0.4)];

    readonly Sequential features;
    readonly Sequential? classifier;
    readonly int[] stageEnds = [1, 2, 3, 5, 8];
    readonly long[] stageChannels;

    /// <param name="variant">0..4 for efficientnet_b0..b4.</param>
    /// <param name="numClasses">Classifier outputs; 0 for an encoder without <c>classifier</c>.</param>
    /// <param name="dilateFrom">0: no dilation; 32: stride-32 stages dilated by 2 (output stride 16); 16: stride-16
    /// stages by 2 and stride-32 ones by 4 (output stride 8).</param>
    /// <param name="inChannels">Image channels.</param>
    public EfficientNet(int variant, int numClasses, int dilateFrom = 0, long inChannels = 3) : base(nameof(EfficientNet))
    {
        if (variant is < 0 or > 4) throw new ArgumentOutOfRangeException(nameof(variant), variant, "EfficientNet variant must be 0..4 (b0..b4).");
        if (dilateFrom is not (0 or 16 or 32)) throw new ArgumentOutOfRangeException(nameof(dilateFrom), dilateFrom, "dilateFrom must be 0, 16 or 32.");
        var (width, depth, dropout) = Variants[variant];
        long Channels(long c) => InvertedResidual.MakeDivisible(c * width, 8);

        var layers = new List<Module<Tensor, Tensor>>
        {
            ConvNormActivation.WithBatchNorm(inChannels, Channels(BaseStages[0].In), 3, stride: 2, activation: ActivationKind.SiLU),
        };
        var channels = new List<long> { Channels(BaseStages[0].In) };
        int totalBlocks = BaseStages.Sum(s => (int)Math.Ceiling(s.Layers * depth));
        int blockId = 0, stride = 2;
        long dilation = 1;
        foreach (var s in BaseStages)
        {
            var stage = new List<Module<Tensor, Tensor>>();
            int count = (int)Math.Ceiling(s.Layers * depth);
            long blockStride = s.Stride;
            stride *= (int)s.Stride;
            long firstDilation = dilation;
            if (dilateFrom != 0 && stride >= dilateFrom && s.Stride > 1)
            {
                dilation *= s.Stride;
                blockStride = 1;
            }
            for (int i = 0; i < count; i++)
            {
                long inC = i == 0 ? Channels(s.In) : Channels(s.Out);
                double dropProbability = 0.2 * blockId / totalBlocks;
                stage.Add(new MBConv(s.Expand, s.Kernel, i == 0 ? blockStride : 1, inC, Channels(s.Out), i == 0 ? firstDilation : dilation, dropProbability));
                blockId++;
            }
            layers.Add(Sequential(stage));
            channels.Add(Channels(s.Out));
        }
        long lastIn = Channels(BaseStages[^1].Out), lastOut = 4 * lastIn;
        layers.Add(ConvNormActivation.WithBatchNorm(lastIn, lastOut, 1, activation: ActivationKind.SiLU));
        channels.Add(lastOut);
        OutChannels = lastOut;
        features = Sequential(layers);
        stageChannels = stageEnds.Select(i => channels[i]).ToArray();
        register_module(nameof(features), features);
        if (numClasses > 0)
        {
            classifier = Sequential(Dropout(dropout), Linear(lastOut, numClasses));
            register_module(nameof(classifier), classifier);
        }
    }

    /// <summary>Channels of the last feature map (1280 for b0).</summary>
    public long OutChannels { get; }

    /// <summary>Stages: <c>features.1</c> (stride 2), <c>.2</c> (4), <c>.3</c> (8), <c>.5</c> (16), <c>.8</c> (32, the head conv).</summary>
    public IReadOnlyList<long> StageChannels => stageChannels;

    /// <inheritdoc/>
    public Tensor?[] Stages(Tensor x) => MobileNetV3.RunFeatures(MobileNetV3.ChildrenOf(features), stageEnds, x);

    string?[] IEncoderExport.ExportStages(OnnxGraphBuilder g, string path, string x)
    {
        g.Visit(features);
        return MobileNetV3.ExportFeatures(g, MobileNetV3.ChildrenOf(features), OnnxGraphBuilder.Join(path, "features"), stageEnds, x);
    }

    /// <summary>Class logits [B, numClasses]; without a classifier, the last feature map.</summary>
    public override Tensor forward(Tensor x) => ClassifierHead.Forward(features.forward(x), classifier);

    string IOnnxExportable.ExportOnnx(OnnxGraphBuilder g, string path, string x) =>
        ClassifierHead.Export(g, path, g.Module(features, OnnxGraphBuilder.Join(path, "features"), x), classifier);
}

/// <summary>EfficientNet's block (torchvision's <c>MBConv</c>): optional 1×1 expansion, depthwise k×k, squeeze-excitation
/// (squeeze to input/4, SiLU, sigmoid gate), 1×1 projection; the input is added back (after stochastic depth) when
/// stride is 1 and the channels are unchanged. Keys <c>block.{i}.*</c>.</summary>
internal sealed class MBConv : Module<Tensor, Tensor>, IOnnxExportable
{
    readonly Sequential block;
    readonly StochasticDepth stochastic_depth;
    readonly bool residual;

    public MBConv(long expandRatio, long kernel, long stride, long inC, long outC, long dilation, double dropProbability) : base(nameof(MBConv))
    {
        residual = stride == 1 && inC == outC;
        long expanded = InvertedResidual.MakeDivisible(inC * expandRatio, 8);
        var layers = new List<Module<Tensor, Tensor>>();
        if (expanded != inC) layers.Add(ConvNormActivation.WithBatchNorm(inC, expanded, 1, activation: ActivationKind.SiLU));
        layers.Add(ConvNormActivation.WithBatchNorm(expanded, expanded, kernel, stride, groups: expanded, dilation: dilation, activation: ActivationKind.SiLU));
        layers.Add(new SqueezeExcitation(expanded, Math.Max(1, inC / 4), ActivationKind.SiLU, ActivationKind.Sigmoid));
        layers.Add(ConvNormActivation.WithBatchNorm(expanded, outC, 1, activation: null));
        block = Sequential(layers);
        stochastic_depth = new StochasticDepth(dropProbability);
        register_module(nameof(block), block);
        register_module(nameof(stochastic_depth), stochastic_depth);
    }

    public override Tensor forward(Tensor x)
    {
        var y = block.forward(x);
        return residual ? stochastic_depth.forward(y) + x : y;
    }

    string IOnnxExportable.ExportOnnx(OnnxGraphBuilder g, string path, string x)
    {
        g.Visit(stochastic_depth);
        var y = g.Module(block, OnnxGraphBuilder.Join(path, "block"), x);
        return residual ? g.Op("Add", OnnxGraphBuilder.Join(path, "add"), [y, x]) : y;
    }
}
