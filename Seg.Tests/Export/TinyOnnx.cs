using Google.Protobuf;
using Seg.Models.Export;
using Seg.Models.Export.Proto;
using DataType = Seg.Models.Export.Proto.TensorProto.Types.DataType;

namespace Seg.Tests.Export;

/// <summary>Hand-made ONNX graphs of a node or two (a model with two inputs, one that computes NaN), written with
/// the exporter's own protobuf classes, for the hostile-file tests.</summary>
internal static class TinyOnnx
{
    /// <summary>A float input [N,3,H,W] named "images".</summary>
    public static ValueInfoProto Image(string name = "images") => OnnxGraphBuilder.ValueInfo(name, DataType.Float, ["N", 3, "H", "W"]);

    /// <summary>A float output [N,C,H,W] named "logits".</summary>
    public static ValueInfoProto Logits(object classes, string name = "logits") => OnnxGraphBuilder.ValueInfo(name, DataType.Float, ["N", classes, "H", "W"]);

    public static NodeProto Node(string op, string[] inputs, string output, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = op, Name = op + "_" + output };
        node.Input.AddRange(inputs);
        node.Output.Add(output);
        node.Attribute.AddRange(attributes);
        return node;
    }

    public static TensorProto Constant(string name, long[] dims, float[] values)
    {
        var t = new TensorProto { Name = name, DataType = (int)DataType.Float };
        t.Dims.AddRange(dims);
        t.FloatData.AddRange(values);
        return t;
    }

    /// <summary>Writes a model of <paramref name="nodes"/> with opset 17.</summary>
    public static void Write(string path, IEnumerable<ValueInfoProto> inputs, IEnumerable<NodeProto> nodes, IEnumerable<ValueInfoProto> outputs,
        IReadOnlyDictionary<string, string>? metadata = null, IEnumerable<TensorProto>? initializers = null)
    {
        var graph = new GraphProto { Name = "tiny" };
        graph.Input.AddRange(inputs);
        graph.Node.AddRange(nodes);
        graph.Output.AddRange(outputs);
        graph.Initializer.AddRange(initializers ?? []);
        var model = new ModelProto { IrVersion = 8, ProducerName = "Seg.Tests", Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        foreach (var (key, value) in metadata ?? new Dictionary<string, string>())
            model.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
        File.WriteAllBytes(path, model.ToByteArray());
    }
}
