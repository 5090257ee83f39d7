using Seg.Models.Export;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Seg.Models.Blocks;

/// <summary>torchvision's <c>ops.Permute</c>: reorders the axes (no state; keeps a Sequential's child indices).</summary>
public sealed class Permute(params long[] dims) : Module<Tensor, Tensor>(nameof(Permute)), IOnnxExportable
{
    /// <summary>x.permute(dims).</summary>
    public override Tensor forward(Tensor x) => x.permute(dims);

    string IOnnxExportable.ExportOnnx(OnnxGraphBuilder g, string path, string x) =>
        g.Op("Transpose", path, [x], OnnxGraphBuilder.Ints("perm", dims));
}

/// <summary>
/// Stochastic depth (Huang et al., ECCV 2016) in torchvision's "row" mode: in training, each sample's residual
/// branch is zeroed with probability <c>p</c> and the survivors scaled by 1/(1 − p); the identity in eval mode.
/// </summary>
public sealed class StochasticDepth : Module<Tensor, Tensor>, IOnnxExportable
{
    readonly double p;

    /// <summary>Drop probability <paramref name="p"/> in [0, 1].</summary>
    public StochasticDepth(double p) : base(nameof(StochasticDepth))
    {
        if (p is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(p), p, "drop probability must be in [0, 1]");
        this.p = p;
    }

    /// <summary>The branch, per sample kept or dropped in training.</summary>
    public override Tensor forward(Tensor x)
    {
        if (!training || p == 0) return x;
        double survival = 1 - p;
        var shape = new long[x.dim()];
        Array.Fill(shape, 1L);
        shape[0] = x.shape[0];
        var noise = empty(shape, x.dtype, x.device).bernoulli_(survival);
        if (survival > 0) noise.div_(survival);
        return x * noise;
    }

    // Export refuses training mode, so this is always the identity.
    string IOnnxExportable.ExportOnnx(OnnxGraphBuilder g, string path, string x) => x;
}
