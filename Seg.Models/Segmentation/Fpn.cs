using Seg.Models.Backbones;
using Seg.Models.Blocks;
using Seg.Models.Export;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Seg.Models.Segmentation;

/// <summary>
/// FPN segmentation (Kirillov et al.'s panoptic FPN head, as segmentation_models_pytorch's <c>FPN</c>) on a torchvision
/// encoder (<c>fpn_&lt;encoder&gt;</c>): the encoder's stride-4, 8, 16 and 32 stages feed a 256-channel top-down
/// pyramid (<c>decoder.p5</c> a 1×1 conv on stride 32; <c>decoder.p4/p3/p2.skip_conv</c> 1×1 laterals added to the
/// up-sampled coarser level); each level goes through 3, 2, 1 or 0 conv3×3–GroupNorm(32)–ReLU blocks of 128
/// channels, each followed by an up-sampling to the next finer level
/// (<c>decoder.seg_blocks.{i}.block.{j}.block.*</c>), the four are summed, Dropout2d(0.2), and
/// <c>segmentation_head.0</c> (1×1 conv) gives logits, up-sampled to the input. Keys as smp's. Unlike smp, every
/// up-sampling is bilinear (align_corners = false) to the target level's size instead of a fixed ×2, so any input
/// size works.
/// </summary>
public sealed class Fpn : Module<Tensor, Tensor>, ISegmentationModel, IOnnxExportable
{
    const long PyramidChannels = 256, SegmentationChannels = 128;

    readonly Module<Tensor, Tensor> encoder;
    readonly FpnDecoder decoder;
    readonly Sequential segmentation_head;

    /// <summary>An FPN on <paramref name="encoderName"/> (one of <see cref="EncoderCatalog.Names"/>).</summary>
    public Fpn(string encoderName, int numClasses, ModelOptions options) : base(nameof(Fpn))
    {
        encoder = EncoderCatalog.Create(encoderName, 32, options.InChannels);
        decoder = new FpnDecoder(((IEncoder)encoder).StageChannels, PyramidChannels, SegmentationChannels);
        segmentation_head = Sequential(Layers.Classifier(SegmentationChannels, numClasses, options));
        register_module(nameof(encoder), encoder);
        register_module(nameof(decoder), decoder);
        register_module(nameof(segmentation_head), segmentation_head);
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
        var y = segmentation_head.forward(decoder.Decode(s[1]!, s[2]!, s[3]!, s[4]!));
        return Layers.Resize(y, input.shape[^2], input.shape[^1]);
    }

    string IOnnxExportable.ExportOnnx(OnnxGraphBuilder g, string path, string input)
    {
        string P(string name) => OnnxGraphBuilder.Join(path, name);
        var s = ((IEncoderExport)encoder).ExportStages(g, P("encoder"), input);
        var y = g.Module(segmentation_head, P("segmentation_head"), decoder.ExportDecode(g, P("decoder"), s[1]!, s[2]!, s[3]!, s[4]!));
        return g.ResizeLike(P("resize"), y, input);
    }
}

/// <summary>smp's <c>FPNDecoder</c> (merge by sum): <c>p5</c>, <c>p4</c>/<c>p3</c>/<c>p2</c> (<c>skip_conv</c>),
/// <c>seg_blocks</c>; returns the merged 128-channel map at stride 4.</summary>
public sealed class FpnDecoder : Module<Tensor, Tensor>
{
    readonly Conv2d p5;
    readonly FpnLateral p4, p3, p2;
    readonly ModuleList<FpnSegmentationBlock> seg_blocks;
    readonly Dropout2d dropout;

    /// <summary>A decoder for an encoder with <paramref name="stageChannels"/> (strides 2..32; stride 2 is not used).</summary>
    public FpnDecoder(IReadOnlyList<long> stageChannels, long pyramidChannels, long segmentationChannels) : base(nameof(FpnDecoder))
    {
        p5 = Conv2d(stageChannels[4], pyramidChannels, 1);
        p4 = new FpnLateral(stageChannels[3], pyramidChannels);
        p3 = new FpnLateral(stageChannels[2], pyramidChannels);
        p2 = new FpnLateral(stageChannels[1], pyramidChannels);
        seg_blocks = ModuleList([.. new[] { 3, 2, 1, 0 }.Select(n => new FpnSegmentationBlock(pyramidChannels, segmentationChannels, n))]);
        dropout = Dropout2d(0.2);
        register_module(nameof(p5), p5);
        register_module(nameof(p4), p4);
        register_module(nameof(p3), p3);
        register_module(nameof(p2), p2);
        register_module(nameof(seg_blocks), seg_blocks);
        register_module(nameof(dropout), dropout);
    }

    /// <summary>The merged map at <paramref name="c2"/>'s (stride 4) resolution.</summary>
    public Tensor Decode(Tensor c2, Tensor c3, Tensor c4, Tensor c5)
    {
        var l5 = p5.forward(c5);
        var l4 = p4.Add(l5, c4);
        var l3 = p3.Add(l4, c3);
        var l2 = p2.Add(l3, c2);
        Tensor[] levels = [l5, l4, l3, l2];
        Tensor[] finer = [l4, l3, l2];
        Tensor? merged = null;
        for (int i = 0; i < 4; i++)
        {
            var y = seg_blocks[i].Apply(levels[i], finer[i..]);
            merged = merged is null ? y : merged + y;
        }
        return dropout.forward(merged!);
    }

    internal string ExportDecode(OnnxGraphBuilder g, string path, string c2, string c3, string c4, string c5)
    {
        string P(string name) => OnnxGraphBuilder.Join(path, name);
        g.Visit(this);
        g.Visit(seg_blocks);
        g.Visit(dropout);
        var l5 = g.Module(p5, P("p5"), c5);
        var l4 = p4.ExportAdd(g, P("p4"), l5, c4);
        var l3 = p3.ExportAdd(g, P("p3"), l4, c3);
        var l2 = p2.ExportAdd(g, P("p2"), l3, c2);
        string[] levels = [l5, l4, l3, l2];
        string[] finer = [l4, l3, l2];
        string? merged = null;
        for (int i = 0; i < 4; i++)
        {
            var y = seg_blocks[i].ExportApply(g, P($"seg_blocks.{i}"), levels[i], finer[i..]);
            merged = merged is null ? y : g.Op("Add", P($"merge{i}"), [merged, y]);
        }
        return merged!;
    }

    /// <summary>Not used on its own: call <see cref="Decode"/>.</summary>
    public override Tensor forward(Tensor x) => throw new NotSupportedException("FpnDecoder needs four feature maps: call Decode.");
}

/// <summary>smp's <c>FPNBlock</c>: the coarser level up-sampled to the lateral's size plus <c>skip_conv</c> (1×1) of it.</summary>
public sealed class FpnLateral : Module<Tensor, Tensor>
{
    readonly Conv2d skip_conv;

    /// <summary>A lateral from <paramref name="skipChannels"/> to <paramref name="pyramidChannels"/>.</summary>
    public FpnLateral(long skipChannels, long pyramidChannels) : base(nameof(FpnLateral))
    {
        skip_conv = Conv2d(skipChannels, pyramidChannels, 1);
        register_module(nameof(skip_conv), skip_conv);
    }

    /// <summary>resize(coarser → skip's size) + skip_conv(skip).</summary>
    public Tensor Add(Tensor coarser, Tensor skip) =>
        Layers.Resize(coarser, skip.shape[^2], skip.shape[^1]) + skip_conv.forward(skip);

    internal string ExportAdd(OnnxGraphBuilder g, string path, string coarser, string skip)
    {
        g.Visit(this);
        var up = g.ResizeLike(OnnxGraphBuilder.Join(path, "resize"), coarser, skip);
        return g.Op("Add", OnnxGraphBuilder.Join(path, "add"), [up, g.Module(skip_conv, OnnxGraphBuilder.Join(path, "skip_conv"), skip)]);
    }

    /// <summary>Not used on its own: call <see cref="Add"/>.</summary>
    public override Tensor forward(Tensor x) => throw new NotSupportedException("FpnLateral needs two inputs: call Add.");
}

/// <summary>smp's <c>SegmentationBlock</c>: max(1, n) conv3×3–GroupNorm(32)–ReLU blocks (<c>block.{j}.block.0..2</c>),
/// each of the first n followed by an up-sampling to the next finer pyramid level.</summary>
public sealed class FpnSegmentationBlock : Module<Tensor, Tensor>
{
    readonly ModuleList<ConvGroupNormRelu> block;
    readonly int upsamples;

    /// <summary>A block with <paramref name="upsamples"/> up-samplings.</summary>
    public FpnSegmentationBlock(long inChannels, long outChannels, int upsamples) : base(nameof(FpnSegmentationBlock))
    {
        this.upsamples = upsamples;
        var convs = new List<ConvGroupNormRelu>();
        for (int j = 0; j < Math.Max(1, upsamples); j++)
            convs.Add(new ConvGroupNormRelu(j == 0 ? inChannels : outChannels, outChannels));
        block = ModuleList(convs.ToArray());
        register_module(nameof(block), block);
    }

    /// <summary>The level through the block, up-sampled to each of <paramref name="finer"/>'s sizes in turn.</summary>
    public Tensor Apply(Tensor level, Tensor[] finer)
    {
        var y = level;
        for (int j = 0; j < Math.Max(1, upsamples); j++)
        {
            y = block[j].forward(y);
            if (j < upsamples) y = Layers.Resize(y, finer[j].shape[^2], finer[j].shape[^1]);
        }
        return y;
    }

    internal string ExportApply(OnnxGraphBuilder g, string path, string level, string[] finer)
    {
        g.Visit(this);
        g.Visit(block);
        var y = level;
        for (int j = 0; j < Math.Max(1, upsamples); j++)
        {
            y = g.Module(block[j], OnnxGraphBuilder.Join(path, $"block.{j}"), y);
            if (j < upsamples) y = g.ResizeLike(OnnxGraphBuilder.Join(path, $"resize{j}"), y, finer[j]);
        }
        return y;
    }

    /// <summary>Not used on its own: call <see cref="Apply"/>.</summary>
    public override Tensor forward(Tensor x) => throw new NotSupportedException("FpnSegmentationBlock needs the finer levels' sizes: call Apply.");
}

/// <summary>smp's <c>Conv3x3GNReLU</c> without its up-sampling (done by <see cref="FpnSegmentationBlock"/>):
/// <c>block</c> = 3×3 conv (no bias), GroupNorm(32), ReLU.</summary>
public sealed class ConvGroupNormRelu : Module<Tensor, Tensor>, IOnnxExportable
{
    readonly Sequential block;

    /// <summary>The block from <paramref name="inChannels"/> to <paramref name="outChannels"/>.</summary>
    public ConvGroupNormRelu(long inChannels, long outChannels) : base(nameof(ConvGroupNormRelu))
    {
        block = Sequential(Layers.Conv3x3(inChannels, outChannels), new Blocks.GroupNorm(32, outChannels), ReLU());
        register_module(nameof(block), block);
    }

    /// <summary>conv → GroupNorm → ReLU.</summary>
    public override Tensor forward(Tensor x) => block.forward(x);

    string IOnnxExportable.ExportOnnx(OnnxGraphBuilder g, string path, string x) => g.Module(block, OnnxGraphBuilder.Join(path, "block"), x);
}
