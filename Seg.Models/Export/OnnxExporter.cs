using System.Reflection;
using System.Security.Cryptography;
using Google.Protobuf;
using Seg.Core.IO;
using Seg.Models.Export.Proto;
using static TorchSharp.torch;
using DataType = Seg.Models.Export.Proto.TensorProto.Types.DataType;

namespace Seg.Models.Export;

/// <summary>
/// Writes a Seg model as an ONNX file for ONNX Runtime and other ONNX consumers, without TorchSharp at the
/// consumer. The exporter walks the model's own modules (TorchSharp has no tracer): convolutions, batch norm
/// (running statistics as initializers, which ONNX Runtime folds into the convolutions), ReLU, pooling, bilinear
/// resizing with the output size read from the shapes, concatenation, transposed convolutions, the UNet's
/// padding and crop, linear layers and the cosine head's normalisation. A module it does not know is an error
/// naming the module's path and type; no module is ever skipped silently.
/// <para>The graph has one input, <c>images</c> float32 [N, C, H, W] (normalised as for the model), and one
/// output: <c>logits</c> float32 [N, classes, H, W] (classifiers: [N, classes]) or, with
/// <see cref="OnnxExportOptions.ArgMax"/>, <c>labels</c> int64 [N, H, W] ([N]).</para>
/// </summary>
public static class OnnxExporter
{
    /// <summary>The oldest opset written (Resize with optional roi and scales needs 13).</summary>
    public const int MinOpset = 13;

    /// <summary>The newest opset written (and tested with ONNX Runtime).</summary>
    public const int MaxOpset = 21;

    /// <summary>Name of the graph's input.</summary>
    public const string InputName = "images";

    /// <summary>Name of the output without <see cref="OnnxExportOptions.ArgMax"/>.</summary>
    public const string LogitsName = "logits";

    /// <summary>Name of the output with <see cref="OnnxExportOptions.ArgMax"/>.</summary>
    public const string LabelsName = "labels";

    /// <summary>The metadata_props key of the SHA-256 (lower-case hex) of the serialised graph, weights included,
    /// which every export writes (Seg.Onnx checks it when it loads the file).</summary>
    public const string GraphSha256Key = "graph_sha256";

    /// <summary>
    /// Exports <paramref name="model"/> as it is (call <c>eval()</c> first) to <paramref name="path"/>, written
    /// atomically (a temporary file renamed over the target); the folder is created when missing.
    /// </summary>
    /// <exception cref="InvalidOperationException">The model, or one of its modules, is in training mode.</exception>
    /// <exception cref="NotSupportedException">A module without an ONNX export (the message names its path and type).</exception>
    /// <exception cref="ArgumentOutOfRangeException">An opset outside <see cref="MinOpset"/>–<see cref="MaxOpset"/>, or a static size below 1.</exception>
    /// <exception cref="IOException">The file cannot be written (the message names it).</exception>
    public static void Export(nn.Module model, string path, OnnxExportOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ArgumentNullException.ThrowIfNull(options);
        if (options.Opset is < MinOpset or > MaxOpset)
            throw new ArgumentOutOfRangeException(nameof(options), options.Opset, $"ONNX export: opset must be {MinOpset}–{MaxOpset}, got {options.Opset}.");
        if (options.StaticSize is { } fixedSize && (fixedSize.Height < 1 || fixedSize.Width < 1))
            throw new ArgumentOutOfRangeException(nameof(options), fixedSize, $"ONNX export: static size must be positive, got {fixedSize.Height}x{fixedSize.Width}.");
        RefuseTrainingMode(model);

        var graph = new OnnxGraphBuilder(options.Opset);
        var input = graph.Reserve(InputName);
        var output = graph.Module(model, "", input);
        graph.CheckCoverage(model);
        if (output == input) output = graph.Op("Identity", "identity", [input]);

        // The graph is built in execution order: its first convolution reads the image's channels.
        var inChannels = graph.FirstConvolution?.in_channels
            ?? throw OnnxGraphBuilder.Unsupported(model, "", "it has no convolution to read the image channels from");
        var (rank, classes) = Probe(model, inChannels, options.StaticSize ?? (32, 32));
        object n = "N", h = (object?)options.StaticSize?.Height ?? "H", w = (object?)options.StaticSize?.Width ?? "W";
        graph.Graph.Input.Add(OnnxGraphBuilder.ValueInfo(InputName, DataType.Float, [n, inChannels, h, w]));

        object[] dims = rank == 4 ? [n, classes, h, w] : [n, classes];
        if (options.ArgMax)
        {
            var labels = graph.Op("ArgMax", "argmax", [output], OnnxGraphBuilder.Int("axis", 1), OnnxGraphBuilder.Int("keepdims", 0));
            graph.Graph.Output.Add(OnnxGraphBuilder.ValueInfo(graph.Rename(labels, LabelsName), DataType.Int64, dims.Where((_, i) => i != 1)));
        }
        else
            graph.Graph.Output.Add(OnnxGraphBuilder.ValueInfo(graph.Rename(output, LogitsName), DataType.Float, dims));
        graph.Graph.Name = model.GetType().Name;

        var file = new ModelProto
        {
            IrVersion = IrVersion(options.Opset),
            ProducerName = "Seg",
            ProducerVersion = typeof(OnnxExporter).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "",
            DocString = $"{model.GetType().Name} exported by Seg (Seg.Models.Export.OnnxExporter).",
            Graph = graph.Graph,
        };
        file.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = options.Opset });
        foreach (var (key, value) in options.Metadata ?? new Dictionary<string, string>())
            if (key != GraphSha256Key) // computed below, from the graph written
                file.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
        // The graph as serialised inside the file (a nested message's bytes are its own serialisation), hashed so that
        // a reader can tell flipped weight bytes from the exported ones, as checkpoints carry a SHA-256.
        file.MetadataProps.Add(new StringStringEntryProto { Key = GraphSha256Key, Value = Convert.ToHexStringLower(SHA256.HashData(graph.Graph.ToByteArray())) });
        Write(file, path);
    }

    // The IR version that came with each opset (ONNX 1.12–1.16), so that older checkers accept older opsets.
    static long IrVersion(int opset) => opset switch { <= 18 => 8, <= 20 => 9, _ => 10 };

    static void RefuseTrainingMode(nn.Module model)
    {
        foreach (var (name, module) in model.named_modules().Prepend(("", model)))
            if (module.training)
                throw new InvalidOperationException(
                    $"ONNX export: the model is in training mode (module '{(name.Length == 0 ? "(the model)" : name)}' of type {module.GetType().Name}); " +
                    "call model.eval() first: the file holds eval-mode behaviour (batch-norm running statistics, no dropout).");
    }

    // One forward on a small input: the output's rank and class count for the declared output shape, and a
    // guarantee that the model runs at all before anything is written.
    static (long Rank, long Classes) Probe(nn.Module model, long inChannels, (int Height, int Width) size)
    {
        if (model is not nn.Module<Tensor, Tensor> forward)
            throw OnnxGraphBuilder.Unsupported(model, "", "the model must map one tensor to one tensor");
        var parameter = model.parameters().FirstOrDefault();
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var y = forward.forward(zeros([1, inChannels, size.Height, size.Width], parameter?.dtype ?? ScalarType.Float32, parameter?.device));
        if (y.dim() == 4 && (y.shape[2] != size.Height || y.shape[3] != size.Width))
            throw OnnxGraphBuilder.Unsupported(model, "", $"its output [{string.Join(",", y.shape)}] is not at the input's resolution {size.Height}x{size.Width}");
        if (y.dim() is not (2 or 4))
            throw OnnxGraphBuilder.Unsupported(model, "", $"its output [{string.Join(",", y.shape)}] is neither [N,C,H,W] nor [N,C]");
        return (y.dim(), y.shape[1]);
    }

    static void Write(ModelProto file, string path)
    {
        var full = Path.GetFullPath(path);
        try
        {
            AtomicFile.Write(full, file.WriteTo);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"ONNX export: cannot write {full}: {e.Message}", e);
        }
    }
}
