namespace Seg.Models.Export;

/// <summary>How <see cref="OnnxExporter.Export"/> writes a model.</summary>
public sealed class OnnxExportOptions
{
    /// <summary>ONNX opset of the default domain, <see cref="OnnxExporter.MinOpset"/>–<see cref="OnnxExporter.MaxOpset"/>.
    /// 17 (the default) is the newest that Debian 12's onnx 1.12 checker knows.</summary>
    public int Opset { get; init; } = 17;

    /// <summary>End the graph with an arg-max over the classes: the output is <c>labels</c>, int64 [N,H,W]
    /// (classifiers: [N]), instead of <c>logits</c>.</summary>
    public bool ArgMax { get; init; }

    /// <summary>Fix the input's height and width (the batch stays dynamic); null keeps N, H and W dynamic.</summary>
    public (int Height, int Width)? StaticSize { get; init; }

    /// <summary>Key/value pairs written to the file's <c>metadata_props</c> (class names, palette, normalisation…).</summary>
    public IReadOnlyDictionary<string, string>? Metadata { get; init; }
}
