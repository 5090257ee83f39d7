using Seg.Models.Export;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Seg.Models.Segmentation;

/// <summary>
/// U-Net (Ronneberger, Fischer and Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation",
/// MICCAI 2015) with same-padded 3×3 convolutions and batch norm. Stage <c>i</c> has <c>baseWidth·2^i</c>
/// channels, <c>depth</c> 2× max-pool steps down, then <c>depth</c> up steps (bilinear ×2 or a 2×2 transposed
/// convolution), each concatenating the skip connection. Inputs of any size work: the image is padded
/// (replicate, right and bottom) to a multiple of 2^depth and the logits are cropped back to the input size.
/// Keys: <c>inc.*</c>, <c>downs.{i}.*</c>, <c>ups.{i}.up.*</c> (transposed only), <c>ups.{i}.conv.*</c>, <c>classifier.*</c>.
/// </summary>
public sealed class UNet : Module<Tensor, Tensor>, ISegmentationModel, IOnnxExportable
{
    readonly Sequential inc;
    readonly ModuleList<Sequential> downs;
    readonly ModuleList<UNetUp> ups;
    readonly Module<Tensor, Tensor> classifier;
    readonly int depth;

    /// <summary>Builds the model with random weights.</summary>
    /// <param name="numClasses">Output channels of the classifier.</param>
    /// <param name="options">Depth, base width, up-sampling, input channels, classifier factory.</param>
    /// <exception cref="ArgumentException"><see cref="ModelOptions.UnetDepth"/> is outside 1..6 or <see cref="ModelOptions.UnetBaseWidth"/> is not positive.</exception>
    public UNet(int numClasses, ModelOptions options) : base(nameof(UNet))
    {
        depth = options.UnetDepth;
        if (depth is < ModelOptions.MinUnetDepth or > ModelOptions.MaxUnetDepth)
            throw new ArgumentException($"UnetDepth must be {ModelOptions.MinUnetDepth}..{ModelOptions.MaxUnetDepth}, got {depth}.", nameof(options));
        if (options.UnetBaseWidth < 1) throw new ArgumentException($"UnetBaseWidth must be positive, got {options.UnetBaseWidth}.", nameof(options));
        long[] c = Enumerable.Range(0, depth + 1).Select(i => (long)options.UnetBaseWidth << i).ToArray();

        inc = Layers.DoubleConv(options.InChannels, c[0]);
        downs = ModuleList(Enumerable.Range(0, depth).Select(i => Layers.DoubleConv(c[i], c[i + 1])).ToArray());
        // ups[0] is the deepest step: c[depth] → c[depth-1].
        ups = ModuleList(Enumerable.Range(0, depth).Select(j => new UNetUp(c[depth - j], c[depth - j - 1], options.UnetBilinear)).ToArray());
        classifier = Layers.Classifier(c[0], numClasses, options);
        register_module(nameof(inc), inc);
        register_module(nameof(downs), downs);
        register_module(nameof(ups), ups);
        register_module(nameof(classifier), classifier);
    }

    /// <inheritdoc/>
    public string? BackbonePrefix => null;
    /// <inheritdoc/>
    public bool HasAuxHead => false;
    /// <inheritdoc/>
    public (Tensor Out, Tensor? Aux) ForwardWithAux(Tensor input) => (forward(input), null);

    /// <summary>Logits [B, numClasses, H, W] at the input's resolution, for any input size.</summary>
    public override Tensor forward(Tensor input)
    {
        long h = input.shape[^2], w = input.shape[^1];
        long multiple = 1L << depth;
        long padH = (multiple - h % multiple) % multiple, padW = (multiple - w % multiple) % multiple;
        var x = padH == 0 && padW == 0 ? input : functional.pad(input, [0, padW, 0, padH], TorchSharp.PaddingModes.Replicate);

        var skips = new List<Tensor> { inc.forward(x) };
        for (int i = 0; i < depth; i++) skips.Add(downs[i].forward(functional.max_pool2d(skips[^1], 2)));
        var y = skips[^1];
        for (int j = 0; j < depth; j++) y = ups[j].Merge(y, skips[depth - j - 1]);
        var logits = classifier.forward(y);
        return padH == 0 && padW == 0 ? logits : logits[.., .., ..(int)h, ..(int)w];
    }

    /// <summary>As <c>forward</c>; the padding amounts come from the input's shape at run time (zero padding and
    /// a full-size crop where the size is already a multiple).</summary>
    string IOnnxExportable.ExportOnnx(OnnxGraphBuilder g, string path, string input)
    {
        string P(string name) => OnnxGraphBuilder.Join(path, name);
        g.Visit(downs);
        g.Visit(ups);
        var x = g.PadBottomRightToMultiple(P("pad"), input, 1L << depth);
        var skips = new List<string> { g.Module(inc, P("inc"), x) };
        for (int i = 0; i < depth; i++)
            skips.Add(g.Module(downs[i], P($"downs.{i}"), g.MaxPool(P($"pool{i}"), skips[^1], [2, 2], [2, 2], [0, 0])));
        var y = skips[^1];
        for (int j = 0; j < depth; j++) y = ups[j].ExportMerge(g, P($"ups.{j}"), y, skips[depth - j - 1]);
        return g.CropLike(P("crop"), g.Module(classifier, P("classifier"), y), input);
    }
}

/// <summary>One U-Net up step: up-sample the deeper map ×2 (bilinear, or <c>up</c>: a 2×2 transposed convolution
/// halving channels), concatenate the skip, then <c>conv</c> (double convolution to the skip's width).</summary>
public sealed class UNetUp : Module<Tensor, Tensor>
{
    readonly ConvTranspose2d? up;
    readonly Sequential conv;

    /// <summary>Builds the step.</summary>
    /// <param name="deepChannels">Channels of the deeper map.</param>
    /// <param name="skipChannels">Channels of the skip connection, and of the output.</param>
    /// <param name="bilinear">True: bilinear up-sampling; false: a 2×2 transposed convolution.</param>
    public UNetUp(long deepChannels, long skipChannels, bool bilinear) : base(nameof(UNetUp))
    {
        if (!bilinear)
        {
            up = ConvTranspose2d(deepChannels, skipChannels, 2, stride: 2);
            register_module(nameof(up), up);
        }
        conv = Layers.DoubleConv((bilinear ? deepChannels : skipChannels) + skipChannels, skipChannels);
        register_module(nameof(conv), conv);
    }

    /// <summary>Up-sample <paramref name="deep"/> to <paramref name="skip"/>'s size and fuse them.</summary>
    public Tensor Merge(Tensor deep, Tensor skip)
    {
        var upsampled = up is null ? Layers.Resize(deep, skip.shape[^2], skip.shape[^1]) : up.forward(deep);
        return conv.forward(cat([skip, upsampled], 1));
    }

    /// <summary>The ONNX counterpart of <see cref="Merge"/>.</summary>
    internal string ExportMerge(OnnxGraphBuilder g, string path, string deep, string skip)
    {
        string P(string name) => OnnxGraphBuilder.Join(path, name);
        g.Visit(this);
        var upsampled = up is null ? g.ResizeLike(P("resize"), deep, skip) : g.Module(up, P("up"), deep);
        return g.Module(conv, P("conv"), g.ConcatChannels(P("cat"), skip, upsampled));
    }

    /// <summary>Not used on its own: an up step needs the skip connection; call <see cref="Merge"/>.</summary>
    public override Tensor forward(Tensor x) => throw new NotSupportedException("UNetUp needs a skip connection: call Merge.");
}
