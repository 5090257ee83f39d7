using Seg.Train.Config;
using Seg.Train.Reports;
using static TorchSharp.torch;

namespace Seg.Tests.Train;

/// <summary>The report's model line states the stride the model really runs at.</summary>
public class RunInfoTests
{
    static string ModelLine(string name, int outputStride) =>
        RunInfo.From(new TrainConfig { Model = new ModelConfig { Name = name, OutputStride = outputStride } }, "1 val image", CPU, 1, null).Model;

    [Theory]
    [InlineData("deeplabv3plus_resnet50", 8, "deeplabv3plus_resnet50 (output stride 8)")]
    [InlineData("deeplabv3plus_resnet50", 16, "deeplabv3plus_resnet50 (output stride 16)")]
    [InlineData("deeplabv3plus_convnext_tiny", 16, "deeplabv3plus_convnext_tiny (output stride 32)")]   // ConvNeXt cannot dilate
    [InlineData("deeplabv3plus_convnext_small", 8, "deeplabv3plus_convnext_small (output stride 32)")]
    [InlineData("fpn_resnet34", 16, "fpn_resnet34")]                                                     // output_stride unused
    [InlineData("deeplabv3_resnet50", 16, "deeplabv3_resnet50")]
    public void The_model_line_names_the_output_stride_only_where_it_applies_and_as_run(string name, int stride, string expected) =>
        Assert.Equal(expected, ModelLine(name, stride));
}
