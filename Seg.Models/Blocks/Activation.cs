using Seg.Models.Export;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Seg.Models.Blocks;

/// <summary>The element-wise activations of torchvision's newer models.</summary>
public enum ActivationKind
{
    /// <summary>max(0, x).</summary>
    ReLU,
    /// <summary>x·relu6(x + 3)/6 (MobileNetV3).</summary>
    Hardswish,
    /// <summary>relu6(x + 3)/6 (MobileNetV3's squeeze-excitation gate).</summary>
    Hardsigmoid,
    /// <summary>x·σ(x), also called swish (EfficientNet).</summary>
    SiLU,
    /// <summary>σ(x) (EfficientNet's squeeze-excitation gate, LR-ASPP's attention).</summary>
    Sigmoid,
    /// <summary>x·Φ(x) with the exact normal CDF (ConvNeXt).</summary>
    GELU,
}

/// <summary>One parameter-free activation with its ONNX export written next to its forward. It has no state, so a
/// Sequential holding it keeps torchvision's child indices and state_dict names.</summary>
public sealed class Activation : Module<Tensor, Tensor>, IOnnxExportable
{
    /// <summary>Which function.</summary>
    public ActivationKind Kind { get; }

    /// <summary>An activation module of the given kind.</summary>
    public Activation(ActivationKind kind) : base(kind.ToString()) => Kind = kind;

    /// <summary>Applies the function element-wise.</summary>
    public override Tensor forward(Tensor x) => Kind switch
    {
        ActivationKind.ReLU => functional.relu(x),
        ActivationKind.Hardswish => functional.hardswish(x),
        ActivationKind.Hardsigmoid => functional.hardsigmoid(x),
        ActivationKind.SiLU => functional.silu(x),
        ActivationKind.Sigmoid => functional.sigmoid(x),
        ActivationKind.GELU => functional.gelu(x),
        _ => throw new InvalidOperationException($"unknown activation {Kind}"),
    };

    // Every opset from 13 on: HardSwish and Gelu exist only from opsets 14 and 20, so both are spelled out.
    string IOnnxExportable.ExportOnnx(OnnxGraphBuilder g, string path, string x)
    {
        string P(string name) => OnnxGraphBuilder.Join(path, name);
        string HardSigmoid(string name) => g.Op("HardSigmoid", name, [x], OnnxGraphBuilder.Float("alpha", 1f / 6), OnnxGraphBuilder.Float("beta", 0.5f));
        switch (Kind)
        {
            case ActivationKind.ReLU: return g.Op("Relu", path, [x]);
            case ActivationKind.Hardsigmoid: return HardSigmoid(path);
            case ActivationKind.Hardswish: return g.Op("Mul", path, [x, HardSigmoid(P("gate"))]);
            case ActivationKind.Sigmoid: return g.Op("Sigmoid", path, [x]);
            case ActivationKind.SiLU: return g.Op("Mul", path, [x, g.Op("Sigmoid", P("gate"), [x])]);
            case ActivationKind.GELU:
                // x·Φ(x) = x·(1 + erf(x/√2))/2
                var erf = g.Op("Erf", P("erf"), [g.Op("Div", P("scaled"), [x, g.Scalar(MathF.Sqrt(2))])]);
                var half = g.Op("Mul", P("half"), [x, g.Scalar(0.5f)]);
                return g.Op("Mul", path, [half, g.Op("Add", P("one_plus"), [erf, g.Scalar(1)])]);
            default: throw OnnxGraphBuilder.Unsupported(this, path, $"activation {Kind}");
        }
    }
}
