using Seg.Models.Export;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Seg.Models.Backbones;

/// <summary>
/// ResNet (He, Zhang, Ren and Sun, "Deep Residual Learning for Image Recognition", CVPR 2016), built exactly as
/// torchvision's <c>torchvision.models.resnet</c>: same layers, same initialisation scheme, same parameter and
/// buffer names (<c>conv1.weight</c>, <c>layer1.0.bn1.running_mean</c>, <c>fc.bias</c>, …), so torchvision
/// state_dicts load without renaming. Without a classifier (<c>numClasses = 0</c>) it is a backbone: there is no
/// <c>fc</c> and <see cref="Features"/> is the way in.
/// </summary>
public sealed class ResNet : Module<Tensor, Tensor>, IOnnxExportable, IEncoder, IEncoderExport
{
    readonly Conv2d conv1;
    // Declared as modules, not BatchNorm2d (sealed), so that SyncBatchNorm.convert_sync_batchnorm can replace them.
    readonly Module<Tensor, Tensor> bn1;
    readonly Sequential layer1, layer2, layer3, layer4;
    readonly Linear? fc;
    readonly long groups, widthPerGroup;
    long inplanes = 64;
    long dilation = 1;

    /// <summary>Channels of <c>layer4</c>'s output (512 for resnet18/34, 2048 for resnet50/101).</summary>
    public long OutChannels { get; }

    /// <summary>Channels of each layer's output, layer1 to layer4.</summary>
    public IReadOnlyList<long> LayerChannels { get; }

    /// <param name="bottleneck">Bottleneck blocks (resnet50/101) or basic blocks (resnet18/34).</param>
    /// <param name="blocks">Blocks per layer, e.g. [3, 4, 6, 3].</param>
    /// <param name="numClasses">Classes of the <c>fc</c> classifier; 0 for a backbone without <c>fc</c>.</param>
    /// <param name="replaceStrideWithDilation">For layer2..4: trade that layer's stride for dilation (DeepLab).</param>
    /// <param name="inChannels">Image channels.</param>
    /// <param name="groups">Groups of the bottlenecks' 3×3 convolutions (32 for ResNeXt).</param>
    /// <param name="widthPerGroup">Channels per group at 64 planes (torchvision's width_per_group: 64 for ResNet, 4 or 8 for ResNeXt).</param>
    public ResNet(bool bottleneck, int[] blocks, int numClasses, bool[]? replaceStrideWithDilation = null, long inChannels = 3,
        long groups = 1, long widthPerGroup = 64)
        : base(nameof(ResNet))
    {
        if (!bottleneck && (groups != 1 || widthPerGroup != 64))
            throw new ArgumentException("Basic blocks only support groups = 1 and widthPerGroup = 64 (as torchvision).", nameof(groups));
        this.groups = groups;
        this.widthPerGroup = widthPerGroup;
        if (blocks.Length != 4) throw new ArgumentException("ResNet needs 4 block counts.", nameof(blocks));
        var dilate = replaceStrideWithDilation ?? [false, false, false];
        if (dilate.Length != 3) throw new ArgumentException("replaceStrideWithDilation needs 3 entries (layer2..4).", nameof(replaceStrideWithDilation));

        conv1 = Conv2d(inChannels, 64, 7, stride: 2, padding: 3, bias: false);
        bn1 = Layers.Bn(64);
        layer1 = MakeLayer(bottleneck, 64, blocks[0], 1, false);
        layer2 = MakeLayer(bottleneck, 128, blocks[1], 2, dilate[0]);
        layer3 = MakeLayer(bottleneck, 256, blocks[2], 2, dilate[1]);
        layer4 = MakeLayer(bottleneck, 512, blocks[3], 2, dilate[2]);
        long expansion = bottleneck ? Bottleneck.Expansion : BasicBlock.Expansion;
        OutChannels = 512 * expansion;
        LayerChannels = [64 * expansion, 128 * expansion, 256 * expansion, 512 * expansion];

        register_module(nameof(conv1), conv1);
        register_module(nameof(bn1), bn1);
        register_module(nameof(layer1), layer1);
        register_module(nameof(layer2), layer2);
        register_module(nameof(layer3), layer3);
        register_module(nameof(layer4), layer4);
        if (numClasses > 0)
        {
            fc = Linear(OutChannels, numClasses);
            register_module(nameof(fc), fc);
        }
        InitializeLikeTorchvision();
    }

    Sequential MakeLayer(bool bottleneck, long planes, int count, long stride, bool dilate)
    {
        long expansion = bottleneck ? Bottleneck.Expansion : BasicBlock.Expansion;
        long previousDilation = dilation;
        if (dilate)
        {
            dilation *= stride;
            stride = 1;
        }
        Sequential? downsample = null;
        if (stride != 1 || inplanes != planes * expansion)
            downsample = Sequential(Layers.Conv1x1(inplanes, planes * expansion, stride), Layers.Bn(planes * expansion));

        var layers = new List<Module<Tensor, Tensor>> { Block(bottleneck, inplanes, planes, stride, downsample, previousDilation) };
        inplanes = planes * expansion;
        for (int i = 1; i < count; i++) layers.Add(Block(bottleneck, inplanes, planes, 1, null, dilation));
        return Sequential(layers);
    }

    Module<Tensor, Tensor> Block(bool bottleneck, long inplanes, long planes, long stride, Sequential? downsample, long dilation) =>
        bottleneck ? new Bottleneck(inplanes, planes, stride, downsample, dilation, groups, widthPerGroup) : new BasicBlock(inplanes, planes, stride, downsample, dilation);

    /// <summary>torchvision's scheme: Kaiming-normal (fan_out, ReLU) convolutions, BatchNorm weight 1 and bias 0,
    /// the Linear layer keeps PyTorch's default.</summary>
    void InitializeLikeTorchvision()
    {
        using var _ = no_grad();
        foreach (var m in modules())
        {
            if (m is Conv2d conv) init.kaiming_normal_(conv.weight!, mode: init.FanInOut.FanOut, nonlinearity: init.NonlinearityType.ReLU);
            else if (m is BatchNorm2d bn)
            {
                bn.weight!.fill_(1);
                bn.bias!.zero_();
            }
        }
    }

    /// <summary>All intermediate outputs (for segmentation decoders).</summary>
    public ResNetFeatures Features(Tensor x)
    {
        var stem = functional.relu(bn1.forward(conv1.forward(x)));
        var l1 = layer1.forward(functional.max_pool2d(stem, 3, stride: 2, padding: 1));
        var l2 = layer2.forward(l1);
        var l3 = layer3.forward(l2);
        var l4 = layer4.forward(l3);
        return new ResNetFeatures(stem, l1, l2, l3, l4);
    }

    /// <summary>Stages: the stem (conv1/bn1/relu, before the max pool), then layer1..4.</summary>
    public IReadOnlyList<long> StageChannels => [64, .. LayerChannels];

    /// <summary>The stem and layer1..4 outputs.</summary>
    public Tensor?[] Stages(Tensor x)
    {
        var f = Features(x);
        return [f.Stem, f.Layer1, f.Layer2, f.Layer3, f.Layer4];
    }

    string?[] IEncoderExport.ExportStages(OnnxGraphBuilder g, string path, string x)
    {
        var f = ExportFeatures(g, path, x);
        return [f.Stem, f.Layer1, f.Layer2, f.Layer3, f.Layer4];
    }

    /// <summary>Class logits [B, numClasses]; a backbone without <c>fc</c> returns <c>layer4</c>'s features.</summary>
    public override Tensor forward(Tensor x)
    {
        var l4 = Features(x).Layer4;
        if (fc is null) return l4;
        return fc.forward(functional.adaptive_avg_pool2d(l4, 1).flatten(1));
    }

    /// <summary>The ONNX counterpart of <see cref="Features"/>: the values of the stem and of layer1..4.</summary>
    internal (string Stem, string Layer1, string Layer2, string Layer3, string Layer4) ExportFeatures(OnnxGraphBuilder g, string path, string x)
    {
        string P(string name) => OnnxGraphBuilder.Join(path, name);
        g.Visit(this);
        var stem = g.Op("Relu", P("relu"), [g.Module(bn1, P("bn1"), g.Module(conv1, P("conv1"), x))]);
        var l1 = g.Module(layer1, P("layer1"), g.MaxPool(P("maxpool"), stem, [3, 3], [2, 2], [1, 1]));
        var l2 = g.Module(layer2, P("layer2"), l1);
        var l3 = g.Module(layer3, P("layer3"), l2);
        return (stem, l1, l2, l3, g.Module(layer4, P("layer4"), l3));
    }

    string IOnnxExportable.ExportOnnx(OnnxGraphBuilder g, string path, string x)
    {
        var l4 = ExportFeatures(g, path, x).Layer4;
        if (fc is null) return l4;
        var pooled = g.Op("GlobalAveragePool", OnnxGraphBuilder.Join(path, "avgpool"), [l4]);
        var flat = g.Op("Flatten", OnnxGraphBuilder.Join(path, "flatten"), [pooled], OnnxGraphBuilder.Int("axis", 1));
        return g.Module(fc, OnnxGraphBuilder.Join(path, "fc"), flat);
    }
}
