using Seg.Models.Export;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Seg.Models.Blocks;

/// <summary>
/// Squeeze-and-excitation (Hu, Shen and Sun, CVPR 2018) as torchvision's <c>ops.SqueezeExcitation</c>: global average
/// pool, <c>fc1</c> (1×1 conv with bias) to the squeeze width, activation, <c>fc2</c> back, a gate, and the input
/// multiplied channel-wise by the gate.
/// </summary>
public sealed class SqueezeExcitation : Module<Tensor, Tensor>, IOnnxExportable
{
    readonly Conv2d fc1, fc2;
    readonly Activation activation, scale_activation;

    /// <summary>SE over <paramref name="channels"/> with a <paramref name="squeeze"/>-channel bottleneck.</summary>
    public SqueezeExcitation(long channels, long squeeze, ActivationKind activation, ActivationKind gate) : base(nameof(SqueezeExcitation))
    {
        fc1 = Conv2d(channels, squeeze, 1);
        fc2 = Conv2d(squeeze, channels, 1);
        this.activation = new Activation(activation);
        scale_activation = new Activation(gate);
        RegisterComponents();
    }

    /// <summary>x · gate(fc2(act(fc1(mean over H, W of x)))).</summary>
    public override Tensor forward(Tensor x)
    {
        var s = functional.adaptive_avg_pool2d(x, 1);
        s = scale_activation.forward(fc2.forward(activation.forward(fc1.forward(s))));
        return x * s;
    }

    string IOnnxExportable.ExportOnnx(OnnxGraphBuilder g, string path, string x)
    {
        string P(string name) => OnnxGraphBuilder.Join(path, name);
        var s = g.Op("GlobalAveragePool", P("avgpool"), [x]);
        s = g.Module(fc1, P("fc1"), s);
        s = g.Module(activation, P("activation"), s);
        s = g.Module(fc2, P("fc2"), s);
        s = g.Module(scale_activation, P("scale_activation"), s);
        return g.Op("Mul", path, [x, s]);
    }
}
