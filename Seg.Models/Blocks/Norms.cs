using Seg.Models.Export;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Seg.Models.Blocks;

/// <summary>
/// Layer normalisation over one axis of size <c>channels</c>, with an affine <c>weight</c> and <c>bias</c>:
/// the last axis (torch's <c>nn.LayerNorm((C,))</c>, as ConvNeXt applies it to channels-last tensors) or axis 1
/// of an [N, C, H, W] tensor (torchvision's <c>LayerNorm2d</c>). Biased variance, as PyTorch.
/// </summary>
public sealed class ChannelLayerNorm : Module<Tensor, Tensor>, IOnnxExportable
{
    readonly Parameter weight, bias;
    readonly long channels;
    readonly double eps;
    readonly bool channelsFirst;

    /// <param name="channels">Size of the normalised axis.</param>
    /// <param name="eps">Added to the variance.</param>
    /// <param name="channelsFirst">Normalise axis 1 of [N, C, H, W] (LayerNorm2d) instead of the last axis.</param>
    public ChannelLayerNorm(long channels, double eps, bool channelsFirst) : base(channelsFirst ? "LayerNorm2d" : "LayerNorm")
    {
        this.channels = channels;
        this.eps = eps;
        this.channelsFirst = channelsFirst;
        weight = Parameter(ones(channels));
        bias = Parameter(zeros(channels));
        register_parameter(nameof(weight), weight);
        register_parameter(nameof(bias), bias);
    }

    /// <summary>(x − mean)/√(var + eps)·weight + bias along the channel axis.</summary>
    public override Tensor forward(Tensor x)
    {
        if (!channelsFirst) return functional.layer_norm(x, [channels], weight, bias, eps);
        // As torchvision's LayerNorm2d: to channels-last, normalise the last axis, back.
        return functional.layer_norm(x.permute(0, 2, 3, 1), [channels], weight, bias, eps).permute(0, 3, 1, 2);
    }

    string IOnnxExportable.ExportOnnx(OnnxGraphBuilder g, string path, string x)
    {
        long axis = channelsFirst ? 1 : -1;
        using var w = channelsFirst ? weight.detach().reshape(channels, 1, 1) : weight.detach();
        using var b = channelsFirst ? bias.detach().reshape(channels, 1, 1) : bias.detach();
        var normalised = g.Normalize(path, x, axis, eps);
        return g.Op("Add", path, [g.Op("Mul", OnnxGraphBuilder.Join(path, "scale"), [normalised, g.Weight(OnnxGraphBuilder.Join(path, "weight"), w)]),
            g.Weight(OnnxGraphBuilder.Join(path, "bias"), b)]);
    }
}

/// <summary>Group normalisation (Wu and He, ECCV 2018) of [N, C, H, W] as torch's <c>nn.GroupNorm</c>: statistics
/// over each group of C/groups channels and all positions, then a per-channel affine <c>weight</c> and <c>bias</c>.</summary>
public sealed class GroupNorm : Module<Tensor, Tensor>, IOnnxExportable
{
    readonly Parameter weight, bias;
    readonly long groups, channels;
    readonly double eps;

    /// <summary>GroupNorm with <paramref name="groups"/> groups over <paramref name="channels"/> channels.</summary>
    public GroupNorm(long groups, long channels, double eps = 1e-5) : base(nameof(GroupNorm))
    {
        if (groups < 1 || channels % groups != 0)
            throw new ArgumentException($"GroupNorm: {channels} channels do not split into {groups} groups.", nameof(groups));
        this.groups = groups;
        this.channels = channels;
        this.eps = eps;
        weight = Parameter(ones(channels));
        bias = Parameter(zeros(channels));
        register_parameter(nameof(weight), weight);
        register_parameter(nameof(bias), bias);
    }

    /// <summary>Normalised per group, then scaled and shifted per channel.</summary>
    public override Tensor forward(Tensor x) => functional.group_norm(x, groups, weight, bias, eps);

    string IOnnxExportable.ExportOnnx(OnnxGraphBuilder g, string path, string x)
    {
        string P(string name) => OnnxGraphBuilder.Join(path, name);
        // [N, C, H, W] → [N, G, C/G·H·W], normalise the last axis, back to x's shape.
        var grouped = g.Op("Reshape", P("group"), [x, g.Int64s(0, groups, -1)]);
        var normalised = g.Normalize(P("norm"), grouped, -1, eps);
        var back = g.Op("Reshape", P("ungroup"), [normalised, g.ShapeSlice(x, 0, 4)]);
        using var w = weight.detach().reshape(channels, 1, 1);
        using var b = bias.detach().reshape(channels, 1, 1);
        return g.Op("Add", path, [g.Op("Mul", P("scale"), [back, g.Weight(P("weight"), w)]), g.Weight(P("bias"), b)]);
    }
}
