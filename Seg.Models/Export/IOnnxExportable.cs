namespace Seg.Models.Export;

/// <summary>
/// A Seg module that writes its own forward into an ONNX graph. TorchSharp cannot trace a forward, so each
/// composite module states its computation twice: <c>forward</c> in TorchSharp and <see cref="ExportOnnx"/> in
/// ONNX nodes, side by side in the same file; the equivalence tests (ONNX Runtime against TorchSharp) hold the
/// two together. Children are exported with <see cref="OnnxGraphBuilder.Module"/>, under their state_dict names.
/// </summary>
internal interface IOnnxExportable
{
    /// <summary>Adds this module's forward, applied to value <paramref name="input"/>, to <paramref name="graph"/>;
    /// returns the output value. <paramref name="path"/> is the module's state_dict prefix ("" at the root).</summary>
    string ExportOnnx(OnnxGraphBuilder graph, string path, string input);
}
