using Google.Protobuf;
using Seg.Models.Export.Proto;
using TorchSharp.Modules;
using static TorchSharp.torch;
using DataType = Seg.Models.Export.Proto.TensorProto.Types.DataType;

namespace Seg.Models.Export;

/// <summary>
/// An ONNX graph under construction. Values are strings (a node's name is also its one output's name); weights
/// become initializers named by their state_dict keys, nodes are named after the module path that made them.
/// <see cref="Module"/> exports one module: the TorchSharp layers below by type, Seg's composite modules through
/// <see cref="IOnnxExportable"/>, and anything else is an error naming the module. It also remembers which
/// modules it exported, so that <see cref="CheckCoverage"/> can prove that no weight-holding module was skipped.
/// </summary>
internal sealed class OnnxGraphBuilder(int opset)
{
    readonly HashSet<string> names = new(StringComparer.Ordinal);
    readonly Dictionary<string, string> shapes = new(StringComparer.Ordinal);
    readonly Dictionary<string, string> constants = new(StringComparer.Ordinal);
    readonly HashSet<nn.Module> visited = new(ReferenceEqualityComparer.Instance);
    readonly List<string> unused = [];

    /// <summary>The opset the nodes are written for.</summary>
    public int Opset { get; } = opset;

    /// <summary>Nodes, initializers, inputs and outputs so far.</summary>
    public GraphProto Graph { get; } = new();

    /// <summary>The first convolution exported, which (modules being exported in execution order) is the first
    /// one the input meets.</summary>
    public Convolution? FirstConvolution { get; private set; }

    /// <summary>The child path <c>path.name</c> (just <c>name</c> at the root).</summary>
    public static string Join(string path, string name) => path.Length == 0 ? name : path + "." + name;

    // ---- modules ----

    /// <summary>Exports <paramref name="module"/> (at state_dict path <paramref name="path"/>) applied to <paramref name="x"/>.</summary>
    /// <exception cref="NotSupportedException">A module type or setting that has no export, naming its path and type.</exception>
    public string Module(nn.Module module, string path, string x)
    {
        visited.Add(module);
        return module switch
        {
            IOnnxExportable composite => composite.ExportOnnx(this, path, x),
            Sequential sequential => sequential.named_children().Aggregate(x, (v, c) => Module(c.module, Join(path, c.name), v)),
            ConvTranspose2d conv => Conv("ConvTranspose", conv, path, x, Ints("output_padding", Pair(conv.output_padding, 0))),
            Conv2d conv => Conv("Conv", conv, path, x),
            BatchNorm2d bn => BatchNorm(bn, path, x),
            ReLU => Op("Relu", path, [x]),
            // Identities in eval mode (export refuses models in training mode).
            Dropout or Dropout2d or Identity => x,
            MaxPool2d pool => MaxPool(path, x, Pair(pool.kernel_size, 1), Pair(pool.stride ?? pool.kernel_size, 1),
                Pair(pool.padding, 0), Pair(pool.dilation, 1), pool.ceil_mode),
            AdaptiveAvgPool2d pool when pool.output_size.All(s => s == 1) => Op("GlobalAveragePool", path, [x]),
            Linear linear => Linear(linear, path, x),
            Flatten flatten when flatten.end_dim == -1 && flatten.start_dim >= 0 =>
                Op("Flatten", path, [x], Int("axis", flatten.start_dim)),
            _ => throw Unsupported(module, path, "this module type has no ONNX export"),
        };
    }

    /// <summary>Marks a module that the model's forward does not use (an auxiliary head), so that
    /// <see cref="CheckCoverage"/> accepts that its weights are not in the graph.</summary>
    public void Unused(nn.Module module, string path)
    {
        visited.Add(module);
        unused.Add(path);
    }

    /// <summary>Marks a container whose items a composite exports one by one (a ModuleList).</summary>
    public void Visit(nn.Module module) => visited.Add(module);

    /// <summary>Fails when a module that holds parameters or buffers was neither exported nor marked unused.</summary>
    public void CheckCoverage(nn.Module root)
    {
        foreach (var (path, module) in root.named_modules())
        {
            if (visited.Contains(module) || unused.Any(u => path == u || path.StartsWith(u + ".", StringComparison.Ordinal))) continue;
            if (module.named_parameters(recurse: false).Any() || module.named_buffers(recurse: false, include_nonpersistent: false).Any())
                throw Unsupported(module, path, "it holds weights but the model's export never reached it");
        }
    }

    /// <summary>The error for a module that cannot be exported: one line naming its path and type.</summary>
    public static NotSupportedException Unsupported(nn.Module module, string path, string why) =>
        new($"ONNX export: module '{(path.Length == 0 ? "(the model)" : path)}' of type {module.GetType().FullName}: {why}.");

    string Conv(string op, Convolution conv, string path, string x, params AttributeProto[] extra)
    {
        if (conv.padding_type is not null || conv.padding_mode != TorchSharp.PaddingModes.Zeros || conv.padding is null)
            throw Unsupported(conv, path, $"only explicit zero padding is exported (padding mode {conv.padding_mode}, padding type {conv.padding_type})");
        var pads = Pair(conv.padding, 0);
        FirstConvolution ??= conv;
        List<string> inputs = [x, Weight(Join(path, "weight"), conv.weight!)];
        if (conv.bias is { } bias) inputs.Add(Weight(Join(path, "bias"), bias));
        return Op(op, path, inputs,
            [Ints("kernel_shape", Pair(conv.kernel_size, 1)), Ints("strides", Pair(conv.stride, 1)), Ints("pads", [.. pads, .. pads]),
             Ints("dilations", Pair(conv.dilation, 1)), Int("group", conv.groups), .. extra]);
    }

    string BatchNorm(BatchNorm2d bn, string path, string x)
    {
        if (!bn.track_running_stats || bn.running_mean is null || bn.running_var is null)
            throw Unsupported(bn, path, "batch norm without running statistics normalises with batch statistics even in eval mode");
        using var ones = TorchSharp.torch.ones(bn.num_features);
        using var zeros = TorchSharp.torch.zeros(bn.num_features);
        return Op("BatchNormalization", path,
            [x, Weight(Join(path, "weight"), bn.weight ?? ones), Weight(Join(path, "bias"), bn.bias ?? zeros),
             Weight(Join(path, "running_mean"), bn.running_mean), Weight(Join(path, "running_var"), bn.running_var)],
            Float("epsilon", (float)bn.eps));
    }

    // y = x Wᵀ + b over the last dimension, for inputs of any rank (Gemm would need rank 2).
    string Linear(Linear linear, string path, string x)
    {
        var weightT = Op("Transpose", Join(path, "weight_t"), [Weight(Join(path, "weight"), linear.weight)], Ints("perm", [1, 0]));
        var y = Op("MatMul", Join(path, "matmul"), [x, weightT]);
        return linear.bias is { } bias ? Op("Add", path, [y, Weight(Join(path, "bias"), bias)]) : y;
    }

    // TorchSharp keeps 2-D settings as one or two values.
    static long[] Pair(long[]? values, long fallback) => values switch
    {
        null or [] => [fallback, fallback],
        [var v] => [v, v],
        [_, _] => values,
        _ => throw new ArgumentException($"expected one or two values, got [{string.Join(", ", values)}]"),
    };

    // ---- operators ----

    /// <summary>Adds a node with one output, named <paramref name="name"/> (made unique); returns the output.</summary>
    public string Op(string opType, string name, IEnumerable<string> inputs, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = opType, Name = Unique(name) };
        node.Input.AddRange(inputs);
        node.Output.Add(node.Name);
        node.Attribute.AddRange(attributes);
        Graph.Node.Add(node);
        return node.Name;
    }

    /// <summary>Max pooling with PyTorch's padding semantics (padded cells never win).</summary>
    public string MaxPool(string name, string x, long[] kernel, long[] stride, long[] padding, long[]? dilation = null, bool ceilMode = false) =>
        Op("MaxPool", name, [x], Ints("kernel_shape", kernel), Ints("strides", stride), Ints("pads", [.. padding, .. padding]),
            Ints("dilations", dilation ?? [1, 1]), Int("ceil_mode", ceilMode ? 1 : 0));

    /// <summary>Concatenation along the channels.</summary>
    public string ConcatChannels(string name, params string[] xs) => Op("Concat", name, xs, Int("axis", 1));

    /// <summary>
    /// Bilinear resize of <paramref name="x"/> to the height and width of <paramref name="like"/>, read from the
    /// shapes at run time. "half_pixel" with an output size is libtorch's <c>interpolate(mode: bilinear,
    /// align_corners: false)</c> with a size: source = (dst + 0.5)·in/out − 0.5, clamped at the border.
    /// </summary>
    public string ResizeLike(string name, string x, string like)
    {
        var sizes = Op("Concat", name + "_sizes", [ShapeSlice(x, 0, 2), ShapeSlice(like, 2, 4)], Int("axis", 0));
        return Op("Resize", name, [x, "", "", sizes], String("mode", "linear"), String("coordinate_transformation_mode", "half_pixel"));
    }

    /// <summary>Pads height and width at the bottom and right, repeating the edge (libtorch's replicate), up to
    /// the next multiple of <paramref name="multiple"/>: amount = (m − size mod m) mod m.</summary>
    public string PadBottomRightToMultiple(string name, string x, long multiple)
    {
        var m = Int64s(multiple);
        var rest = Op("Mod", name + "_rest", [ShapeSlice(x, 2, 4), m]);
        var amount = Op("Mod", name + "_amount", [Op("Sub", name + "_gap", [m, rest]), m]);
        // ONNX pads list every axis' begin, then every axis' end: [N, C, H, W] begins, then [N, C] ends, then H, W.
        var pads = Op("Concat", name + "_pads", [Int64s(0, 0, 0, 0, 0, 0), amount], Int("axis", 0));
        return Op("Pad", name, [x, pads], String("mode", "edge"));
    }

    /// <summary>The top-left part of <paramref name="x"/> of <paramref name="like"/>'s height and width.</summary>
    public string CropLike(string name, string x, string like) =>
        Op("Slice", name, [x, Int64s(0, 0), ShapeSlice(like, 2, 4), Int64s(2, 3)]);

    /// <summary>Sum of squares over <paramref name="axis"/>, kept as a size-1 dimension (axes became an input in opset 18).</summary>
    public string ReduceKeepDims(string op, string name, string x, long axis) => Opset >= 18
        ? Op(op, name, [x, Int64s(axis)], Int("keepdims", 1))
        : Op(op, name, [x], Ints("axes", [axis]), Int("keepdims", 1));

    /// <summary>(x − mean)/√(var + eps) along <paramref name="axis"/>, with the biased variance (layer and group
    /// normalisation before their affine part; LayerNormalization is only in opset 17 and later).</summary>
    public string Normalize(string name, string x, long axis, double eps)
    {
        var centred = Op("Sub", name + "_centred", [x, ReduceKeepDims("ReduceMean", name + "_mean", x, axis)]);
        var variance = ReduceKeepDims("ReduceMean", name + "_var", Op("Mul", name + "_square", [centred, centred]), axis);
        var std = Op("Sqrt", name + "_std", [Op("Add", name + "_var_eps", [variance, Scalar((float)eps)])]);
        return Op("Div", name + "_normalised", [centred, std]);
    }

    /// <summary><c>Shape(x)[start:end]</c>, int64.</summary>
    public string ShapeSlice(string x, long start, long end)
    {
        if (!shapes.TryGetValue(x, out var shape)) shapes[x] = shape = Op("Shape", x + "_shape", [x]);
        return Op("Slice", $"{x}_shape_{start}_{end}", [shape, Int64s(start), Int64s(end), Int64s(0)]);
    }

    // ---- initializers ----

    /// <summary>A float32 initializer holding <paramref name="tensor"/> (copied from any device and dtype).</summary>
    public string Weight(string name, Tensor tensor)
    {
        using var cpu = tensor.detach().to(ScalarType.Float32).cpu().contiguous();
        var initializer = new TensorProto { Name = Unique(name), DataType = (int)DataType.Float, RawData = ByteString.CopyFrom(cpu.bytes) };
        initializer.Dims.AddRange(cpu.shape);
        Graph.Initializer.Add(initializer);
        return initializer.Name;
    }

    /// <summary>A float32 scalar initializer.</summary>
    public string Scalar(float value)
    {
        var key = "f:" + BitConverter.SingleToInt32Bits(value);
        if (constants.TryGetValue(key, out var known)) return known;
        var initializer = new TensorProto { Name = Unique("const_float"), DataType = (int)DataType.Float };
        initializer.FloatData.Add(value);
        Graph.Initializer.Add(initializer);
        return constants[key] = initializer.Name;
    }

    /// <summary>A 1-D int64 initializer (shared between uses of the same values).</summary>
    public string Int64s(params long[] values)
    {
        var key = "i:" + string.Join(",", values);
        if (constants.TryGetValue(key, out var known)) return known;
        var initializer = new TensorProto { Name = Unique("const_int64"), DataType = (int)DataType.Int64 };
        initializer.Dims.Add(values.Length);
        initializer.Int64Data.AddRange(values);
        Graph.Initializer.Add(initializer);
        return constants[key] = initializer.Name;
    }

    // ---- inputs, outputs ----

    /// <summary>Declares a graph input or output of <paramref name="type"/> with dimensions that are numbers
    /// (fixed) or strings (named, dynamic).</summary>
    public static ValueInfoProto ValueInfo(string name, DataType type, IEnumerable<object> dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
            shape.Dim.Add(d is string param ? new TensorShapeProto.Types.Dimension { DimParam = param }
                : new TensorShapeProto.Types.Dimension { DimValue = Convert.ToInt64(d, System.Globalization.CultureInfo.InvariantCulture) });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } },
        };
    }

    /// <summary>Reserves <paramref name="name"/> for a graph input.</summary>
    public string Reserve(string name) => names.Add(name) ? name : throw new InvalidOperationException($"name '{name}' is taken");

    /// <summary>Renames value <paramref name="value"/> (the output of a node) to <paramref name="name"/>.</summary>
    public string Rename(string value, string name)
    {
        Reserve(name);
        foreach (var node in Graph.Node)
        {
            for (int i = 0; i < node.Output.Count; i++) if (node.Output[i] == value) node.Output[i] = name;
            for (int i = 0; i < node.Input.Count; i++) if (node.Input[i] == value) node.Input[i] = name;
        }
        return name;
    }

    string Unique(string name)
    {
        if (name.Length == 0) name = "node";
        var candidate = name;
        for (int i = 2; !names.Add(candidate); i++) candidate = $"{name}_{i}";
        return candidate;
    }

    // ---- attributes ----

    public static AttributeProto Int(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    public static AttributeProto Ints(string name, IEnumerable<long> values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        attribute.Ints.AddRange(values);
        return attribute;
    }

    public static AttributeProto Float(string name, float value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    public static AttributeProto String(string name, string value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) };
}
