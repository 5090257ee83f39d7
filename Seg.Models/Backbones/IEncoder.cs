using Seg.Models.Export;
using static TorchSharp.torch;

namespace Seg.Models.Backbones;

/// <summary>
/// A classifier-less backbone seen as an encoder for the encoder–decoder models: five stages, the last feature map
/// at strides 2, 4, 8, 16 and 32 of the input (a stage can be absent: ConvNeXt starts at stride 4). Dilated
/// encoders keep the nominal stage boundaries but stop shrinking (DeepLabV3+ at output stride 16 or 8).
/// </summary>
public interface IEncoder
{
    /// <summary>Channels of the five stages (stride 2, 4, 8, 16, 32); 0 where the encoder has no such stage.</summary>
    IReadOnlyList<long> StageChannels { get; }

    /// <summary>The five stages' outputs for input <paramref name="x"/>; null where <see cref="StageChannels"/> is 0.</summary>
    Tensor?[] Stages(Tensor x);
}

/// <summary>The ONNX counterpart of <see cref="IEncoder.Stages"/>.</summary>
internal interface IEncoderExport
{
    /// <summary>The graph values of the five stages (null where absent), for the encoder at state_dict path <paramref name="path"/>.</summary>
    string?[] ExportStages(OnnxGraphBuilder g, string path, string x);
}
