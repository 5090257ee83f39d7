using Microsoft.ML.OnnxRuntime;
using Seg.Models;
using Seg.Models.Heads;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Seg.Tests.Export;

/// <summary>Models to export, randomised batch norm, and ONNX Runtime runs, for the export tests.</summary>
internal static class OnnxTestKit
{
    public const int Classes = 5;

    /// <summary>Every exported architecture path, small where the architecture allows (ResNet parts are fixed):
    /// UNet options, UNet-ResNet34, DeepLabV3 (output stride 8), DeepLabV3+ at 16 and 8 with the unused auxiliary
    /// head, the cosine head, a BasicBlock classifier. <see cref="HeavyCases"/> repeats these paths with more blocks
    /// or on other models.</summary>
    public static readonly IReadOnlyDictionary<string, Func<nn.Module<Tensor, Tensor>>> Cases = new Dictionary<string, Func<nn.Module<Tensor, Tensor>>>
    {
        ["unet_depth4_bilinear"] = () => ModelFactory.Create("unet", Classes, new ModelOptions { UnetDepth = 4, UnetBaseWidth = 8 }),
        ["unet_depth3_transposed"] = () => ModelFactory.Create("unet", Classes, new ModelOptions { UnetDepth = 3, UnetBaseWidth = 8, UnetBilinear = false }),
        ["unet_depth1"] = () => ModelFactory.Create("unet", Classes, new ModelOptions { UnetDepth = 1, UnetBaseWidth = 8 }),
        ["unet_depth6_transposed"] = () => ModelFactory.Create("unet", Classes, new ModelOptions { UnetDepth = 6, UnetBaseWidth = 4, UnetBilinear = false }),
        ["unet_grey_input"] = () => ModelFactory.Create("unet", Classes, new ModelOptions { UnetDepth = 2, UnetBaseWidth = 8, InChannels = 1 }),
        ["unet_cosine_head"] = () => ModelFactory.Create("unet", Classes, new ModelOptions { UnetDepth = 2, UnetBaseWidth = 8, HeadFactory = (c, k) => new CosineHead(c, k, 16, 12) }),
        ["unet_resnet34"] = () => ModelFactory.Create("unet_resnet34", Classes),
        ["deeplabv3_resnet50"] = () => ModelFactory.Create("deeplabv3_resnet50", Classes),
        ["deeplabv3plus_resnet50_os16"] = () => ModelFactory.Create("deeplabv3plus_resnet50", Classes),
        ["deeplabv3plus_resnet50_os8_aux"] = () => ModelFactory.Create("deeplabv3plus_resnet50", Classes, new ModelOptions { OutputStride = 8, AuxHead = true }),
        ["resnet18"] = () => ModelFactory.Create("resnet18", Classes),
        ["mobilenet_v3_small"] = () => ModelFactory.Create("mobilenet_v3_small", Classes),
        ["efficientnet_b0"] = () => ModelFactory.Create("efficientnet_b0", Classes),
        ["convnext_tiny"] = () => ModelFactory.Create("convnext_tiny", Classes),
        ["lraspp_mobilenet_v3_large"] = () => ModelFactory.Create("lraspp_mobilenet_v3_large", Classes),
        ["deeplabv3_mobilenet_v3_large_aux"] = () => ModelFactory.Create("deeplabv3_mobilenet_v3_large", Classes, new ModelOptions { AuxHead = true }),
        ["unet_mobilenet_v3_small"] = () => ModelFactory.Create("unet_mobilenet_v3_small", Classes),
        ["unet_convnext_tiny"] = () => ModelFactory.Create("unet_convnext_tiny", Classes),
        ["fpn_resnet18"] = () => ModelFactory.Create("fpn_resnet18", Classes),
        ["fpn_efficientnet_b0"] = () => ModelFactory.Create("fpn_efficientnet_b0", Classes),
        ["deeplabv3plus_mobilenet_v3_small_aux"] = () => ModelFactory.Create("deeplabv3plus_mobilenet_v3_small", Classes, new ModelOptions { AuxHead = true }),
        ["deeplabv3plus_resnet18_os8"] = () => ModelFactory.Create("deeplabv3plus_resnet18", Classes, new ModelOptions { OutputStride = 8 }),
        ["deeplabv3plus_efficientnet_b0_os8"] = () => ModelFactory.Create("deeplabv3plus_efficientnet_b0", Classes, new ModelOptions { OutputStride = 8 }),
    };

    // The models whose cases predate the zoo keep their fresh weights with randomised batch norm only.
    static readonly HashSet<string> BatchNormOnly = ["unet_depth4_bilinear", "unet_depth3_transposed", "unet_depth1", "unet_depth6_transposed",
        "unet_grey_input", "unet_cosine_head", "unet_resnet34", "deeplabv3_resnet50", "deeplabv3plus_resnet50_os16", "deeplabv3plus_resnet50_os8_aux",
        "resnet18", "deeplabv3_resnet50_aux", "deeplabv3plus_resnet50_cosine_head", "resnet34", "resnet50", "deeplabv3_resnet101",
        "deeplabv3_resnet101_aux", "deeplabv3plus_resnet101_os16", "deeplabv3plus_resnet101_os8_aux", "resnet101"];

    /// <summary>Every name of <see cref="ModelFactory.Names"/> not covered by a case above, under its own name.</summary>
    static Dictionary<string, Func<nn.Module<Tensor, Tensor>>> WithEveryOtherName(Dictionary<string, Func<nn.Module<Tensor, Tensor>>> cases)
    {
        foreach (var name in ModelFactory.Names)
            if (!cases.ContainsKey(name) && !Cases.ContainsKey(name) && !cases.Keys.Concat(Cases.Keys).Any(k => k.StartsWith(name + "_", StringComparison.Ordinal)))
                cases[name] = () => ModelFactory.Create(name, Classes);
        return cases;
    }

    /// <summary>The other models and combinations (every ResNet-101 one, and every name of <see cref="ModelFactory.Names"/>
    /// that no default case covers): slow on 2 cores, opt-in (Category=Heavy).</summary>
    public static readonly IReadOnlyDictionary<string, Func<nn.Module<Tensor, Tensor>>> HeavyCases = WithEveryOtherName(new Dictionary<string, Func<nn.Module<Tensor, Tensor>>>
    {
        ["deeplabv3_resnet50_aux"] = () => ModelFactory.Create("deeplabv3_resnet50", Classes, new ModelOptions { AuxHead = true }),
        ["deeplabv3plus_resnet50_cosine_head"] = () => ModelFactory.Create("deeplabv3plus_resnet50", Classes, new ModelOptions { HeadFactory = (c, k) => new CosineHead(c, k) }),
        ["resnet34"] = () => ModelFactory.Create("resnet34", Classes),
        ["resnet50"] = () => ModelFactory.Create("resnet50", Classes),
        ["deeplabv3_resnet101"] = () => ModelFactory.Create("deeplabv3_resnet101", Classes),
        ["deeplabv3_resnet101_aux"] = () => ModelFactory.Create("deeplabv3_resnet101", Classes, new ModelOptions { AuxHead = true }),
        ["deeplabv3plus_resnet101_os16"] = () => ModelFactory.Create("deeplabv3plus_resnet101", Classes),
        ["deeplabv3plus_resnet101_os8_aux"] = () => ModelFactory.Create("deeplabv3plus_resnet101", Classes, new ModelOptions { OutputStride = 8, AuxHead = true }),
        ["resnet101"] = () => ModelFactory.Create("resnet101", Classes),
        ["mobilenet_v3_large"] = () => ModelFactory.Create("mobilenet_v3_large", Classes),
        ["efficientnet_b4"] = () => ModelFactory.Create("efficientnet_b4", Classes),
        ["convnext_small"] = () => ModelFactory.Create("convnext_small", Classes),
        ["resnext50_32x4d"] = () => ModelFactory.Create("resnext50_32x4d", Classes),
        ["fcn_resnet50_aux"] = () => ModelFactory.Create("fcn_resnet50", Classes, new ModelOptions { AuxHead = true }),
    });

    /// <summary>The case's model with random batch-norm statistics and affine parameters (fresh ones are the
    /// identity, which would hide a wrong export of batch norm), in eval mode.</summary>
    public static nn.Module<Tensor, Tensor> Build(string name)
    {
        Seg.Core.SegRuntime.Initialize();
        manual_seed(name.Length * 7919 + name[0]);
        var model = (Cases.TryGetValue(name, out var make) ? make : HeavyCases[name])();
        RandomizeBatchNorm(model);
        if (!BatchNormOnly.Contains(name)) RandomizeNormsAndScales(model);
        model.eval();
        return model;
    }

    public static void RandomizeBatchNorm(nn.Module model)
    {
        using var _ = no_grad();
        foreach (var module in model.modules())
            if (module is BatchNorm2d bn)
            {
                bn.running_mean!.copy_(randn_like(bn.running_mean) * 0.5);
                bn.running_var!.copy_(rand_like(bn.running_var) * 1.5 + 0.5);
                bn.weight!.copy_(rand_like(bn.weight) + 0.5);
                bn.bias!.copy_(randn_like(bn.bias) * 0.2);
            }
    }

    /// <summary>Layer and group norms' affine parameters, ConvNeXt's layer scales and every bias at random values
    /// (fresh ones are ones, zeros and 1e-6, which would hide a wrong export). Not the pattern weights of the
    /// torchvision tests: in the deeper EfficientNets those make float32 itself drift 5e-4 from float64 (seen with
    /// unet_efficientnet_b2), which says nothing about the exporter.</summary>
    public static void RandomizeNormsAndScales(nn.Module model)
    {
        using var _ = no_grad();
        foreach (var (key, p) in model.named_parameters())
        {
            if (key.EndsWith("layer_scale", StringComparison.Ordinal)) p.copy_(rand_like(p) * 0.5 + 0.25);
            else if (p.dim() == 1 && key.EndsWith("weight", StringComparison.Ordinal)) p.copy_(rand_like(p) + 0.5);
            else if (p.dim() == 1 && key.EndsWith("bias", StringComparison.Ordinal)) p.copy_(randn_like(p) * 0.2);
        }
    }

    /// <summary>Image channels of a case (as its options say).</summary>
    public static int InChannels(string name) => name == "unet_grey_input" ? 1 : 3;

    /// <summary>Runs a file's single input through ONNX Runtime (CPU, 2 threads); returns the first output's
    /// values as doubles and its shape.</summary>
    public static (double[] Values, long[] Shape) Run(string path, Tensor input)
    {
        using var options = new SessionOptions { IntraOpNumThreads = 2 };
        using var session = new InferenceSession(path, options);
        return Run(session, input);
    }

    public static (double[] Values, long[] Shape) Run(InferenceSession session, Tensor input)
    {
        using var cpu = input.to(ScalarType.Float32).cpu().contiguous();
        using var value = OrtValue.CreateTensorValueFromMemory(cpu.data<float>().ToArray(), cpu.shape);
        using var results = session.Run(new RunOptions(), [session.InputNames[0]], [value], [session.OutputNames[0]]);
        var info = results[0].GetTensorTypeAndShape();
        double[] values = info.ElementDataType == Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Int64
            ? results[0].GetTensorDataAsSpan<long>().ToArray().Select(v => (double)v).ToArray()
            : results[0].GetTensorDataAsSpan<float>().ToArray().Select(v => (double)v).ToArray();
        return (values, info.Shape);
    }

    /// <summary>max|a − b| and max|b|.</summary>
    public static (double MaxDiff, double MaxRef) Compare(double[] actual, double[] reference)
    {
        Assert.Equal(reference.Length, actual.Length);
        double diff = 0, max = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            diff = Math.Max(diff, Math.Abs(actual[i] - reference[i]));
            max = Math.Max(max, Math.Abs(reference[i]));
        }
        return (diff, max);
    }

    /// <summary>A temporary folder removed on dispose.</summary>
    public sealed class TempDir : IDisposable
    {
        public string Root { get; } = Directory.CreateTempSubdirectory("seg-onnx-").FullName;
        public string File(string name) => Path.Combine(Root, name);
        public void Dispose() => Directory.Delete(Root, recursive: true);
    }
}
