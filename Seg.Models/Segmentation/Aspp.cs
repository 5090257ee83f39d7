using Seg.Models.Export;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Seg.Models.Segmentation;

/// <summary>
/// Atrous Spatial Pyramid Pooling (Chen, Papandreou, Schroff and Adam, "Rethinking Atrous Convolution for Semantic
/// Image Segmentation", 2017), laid out as torchvision's <c>ASPP</c>: <c>convs.0</c> a 1×1 branch, <c>convs.1..n</c>
/// dilated 3×3 branches, the last branch image pooling; <c>project</c> fuses them (1×1 conv, BN, ReLU, dropout 0.5).
/// </summary>
public sealed class Aspp : Module<Tensor, Tensor>, IOnnxExportable
{
    readonly ModuleList<Module<Tensor, Tensor>> convs;
    readonly Sequential project;

    /// <summary>Builds the 1×1 branch, one dilated 3×3 branch per rate, the pooling branch and the projection.</summary>
    /// <param name="inChannels">Channels of the input feature map.</param>
    /// <param name="atrousRates">Dilation of each 3×3 branch (e.g. 6/12/18 at output stride 16).</param>
    /// <param name="outChannels">Channels of every branch and of the output.</param>
    public Aspp(long inChannels, IReadOnlyList<long> atrousRates, long outChannels = 256) : base(nameof(Aspp))
    {
        var branches = new List<Module<Tensor, Tensor>>
        {
            Sequential(Layers.Conv1x1(inChannels, outChannels), Layers.Bn(outChannels), ReLU()),
        };
        foreach (var rate in atrousRates)
            branches.Add(Sequential(Layers.Conv3x3(inChannels, outChannels, dilation: rate), Layers.Bn(outChannels), ReLU()));
        // Image pooling branch: its BatchNorm sees one value per channel and image, so train mode needs batch > 1 (as in PyTorch).
        branches.Add(Sequential(AdaptiveAvgPool2d(1), Layers.Conv1x1(inChannels, outChannels), Layers.Bn(outChannels), ReLU()));
        convs = ModuleList(branches.ToArray());
        project = Sequential(Layers.Conv1x1(branches.Count * outChannels, outChannels), Layers.Bn(outChannels), ReLU(), Dropout(0.5));
        register_module(nameof(convs), convs);
        register_module(nameof(project), project);
    }

    /// <summary>Runs every branch on <paramref name="x"/> [B, C, h, w], concatenates them and projects to
    /// [B, outChannels, h, w].</summary>
    public override Tensor forward(Tensor x)
    {
        long h = x.shape[^2], w = x.shape[^1];
        var outs = new Tensor[convs.Count];
        for (int i = 0; i < convs.Count; i++) outs[i] = convs[i].forward(x);
        outs[^1] = Layers.Resize(outs[^1], h, w); // the pooling branch is 1×1
        return project.forward(cat(outs, 1));
    }

    string IOnnxExportable.ExportOnnx(OnnxGraphBuilder g, string path, string x)
    {
        g.Visit(convs);
        var outs = new string[convs.Count];
        for (int i = 0; i < convs.Count; i++) outs[i] = g.Module(convs[i], OnnxGraphBuilder.Join(path, $"convs.{i}"), x);
        outs[^1] = g.ResizeLike(OnnxGraphBuilder.Join(path, "pool_resize"), outs[^1], x);
        return g.Module(project, OnnxGraphBuilder.Join(path, "project"), g.ConcatChannels(OnnxGraphBuilder.Join(path, "cat"), outs));
    }
}
