using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Seg.Models.Export;
using Seg.Models.Export.Proto;

namespace Seg.Bench;

/// <summary>
/// Forward FLOPs of an exported model: 2 × the multiply-adds of every Conv (out_elements × in_channels/groups × kh × kw)
/// and MatMul (out_elements × K) node. ONNX Runtime runs the graph once with every Conv and MatMul output made a graph
/// output, so each node's output shape is the one actually computed (run-time pads and resizes included, which onnx's
/// static shape inference could not follow). Normalisation, activations, pooling, resizing and additions are not counted.
/// </summary>
static class OnnxFlops
{
    /// <summary>FLOPs of the model at <paramref name="file"/> (exported with a static <paramref name="size"/>²
    /// input), scaled to <paramref name="target"/>²: a node with a spatial output (H·W &gt; 1; for a channels-last
    /// MatMul, the dims before the last) is scaled by (target/size)², nodes after global pooling are not. Exact when
    /// every feature size at <paramref name="target"/> is (target/size) times the one at <paramref name="size"/>.</summary>
    public static double Count(string file, int size, int target)
    {
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(file));
        var graph = model.Graph;
        var weights = graph.Initializer.ToDictionary(t => t.Name, t => t.Dims.ToArray());
        var counted = graph.Node.Where(n => n.OpType is "Conv" or "MatMul").ToList();
        var unsupported = graph.Node.FirstOrDefault(n => n.OpType is "Gemm" or "ConvTranspose" or "Einsum");
        if (unsupported is not null)
            throw new NotSupportedException($"{file}: node {unsupported.Name} ({unsupported.OpType}) is not counted by OnnxFlops");
        // A MatMul's K is the last dim of its left input (its right one may be computed, e.g. a transposed weight).
        var wanted = counted.Select(n => n.Output[0]).Concat(counted.Where(n => n.OpType == "MatMul").Select(n => n.Input[0])).Distinct().ToList();
        var outputs = graph.Output.Select(o => o.Name).ToHashSet();
        foreach (var name in wanted)
            if (outputs.Add(name))
                graph.Output.Add(new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float } } });

        using var options = new SessionOptions { IntraOpNumThreads = 2, GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL };
        using var session = new InferenceSession(model.ToByteArray(), options);
        var input = new DenseTensor<float>(new float[3 * size * size], [1, 3, size, size]);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(OnnxExporter.InputName, input)], wanted);
        var shapes = results.ToDictionary(r => r.Name, r => r.AsTensor<float>().Dimensions.ToArray());

        double scale = (double)target * target / ((double)size * size), flops = 0;
        foreach (var node in counted)
        {
            var output = shapes[node.Output[0]];
            double elements = output.Aggregate(1.0, (a, d) => a * d);
            double macs; bool spatial;
            if (node.OpType == "Conv")
            {
                if (!weights.TryGetValue(node.Input[1], out var weight))
                    throw new NotSupportedException($"{file}: Conv {node.Name} has no constant weight");
                macs = elements * weight[1] * weight.Skip(2).Aggregate(1L, (a, d) => a * d); // weight[1] = in_channels / groups
                spatial = output[2] * output[3] > 1;
            }
            else
            {
                macs = elements * shapes[node.Input[0]][^1];
                spatial = output.Length == 4 && output[1] * output[2] > 1;
            }
            flops += 2 * macs * (spatial ? scale : 1);
        }
        return flops;
    }
}
