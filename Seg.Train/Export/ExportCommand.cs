using Seg.Data.Transforms;
using Seg.Models.Export;
using Seg.Onnx;
using Seg.Train.Checkpoints;
using Seg.Train.Config;
using Seg.Platform.IO;

namespace Seg.Train.Export;

/// <summary>
/// <c>export</c>: writes a checkpoint's model as an ONNX file, with what a consumer needs in its metadata (class
/// names, palette, normalisation, model name, iteration and the config's eval settings; see
/// <see cref="OnnxModelMetadata"/>), for <see cref="OnnxSegmenter"/> or any ONNX runtime.
/// </summary>
public static class ExportCommand
{
    /// <summary>Exports <paramref name="checkpoint"/> to <paramref name="output"/>; returns the metadata written.
    /// Settings that the file cannot carry (multi-scale test, validation transforms besides normalize) are reported
    /// on <paramref name="warnings"/>.</summary>
    /// <param name="checkpoint">A <c>.ckpt</c> written by <c>train</c>.</param>
    /// <param name="output">The <c>.onnx</c> file to write.</param>
    /// <param name="opset">The ONNX opset.</param>
    /// <param name="argMax">Output labels instead of logits.</param>
    /// <param name="staticSize">Fixed input height and width, or null for dynamic ones.</param>
    /// <param name="warnings">Where to say what the file leaves out (null: nowhere).</param>
    public static OnnxModelMetadata Run(string checkpoint, string output, int opset = 17, bool argMax = false,
        (int Height, int Width)? staticSize = null, TextWriter? warnings = null)
    {
        // Before the model is loaded: an existing output must be a regular file (not /dev/full, a FIFO, a folder or a link).
        FileChecks.RequireWritableFile(Path.GetFullPath(output), "--output");
        if (staticSize is { } fixedSize && (fixedSize.Height is < 1 or > ConfigLoader.MaxImageSide || fixedSize.Width is < 1 or > ConfigLoader.MaxImageSide))
            throw new ArgumentException($"--static {fixedSize.Height} {fixedSize.Width}: each side must lie in [1, {ConfigLoader.MaxImageSide}] " +
                                        "(the exporter runs the model once at that size)");
        var loaded = CheckpointModel.Load(checkpoint);
        var eval = loaded.Config.Eval;
        var normalization = loaded.ValPipeline().Normalization;
        var others = loaded.ValPipeline().Transforms.Where(t => t is not Normalize).Select(t => t.Name).ToList();
        if (others.Count > 0)
            warnings?.WriteLine($"warning: data.val_transforms has {string.Join(", ", others)} besides normalize: the ONNX file's metadata " +
                "carries only the normalisation, so apply those steps to images before Seg.Onnx.");
        if (eval.Scales is not [1.0])
            warnings?.WriteLine($"warning: eval.scales [{string.Join(", ", eval.Scales)}] (multi-scale test) is not carried: Seg.Onnx predicts at scale 1.");

        var metadata = new OnnxModelMetadata
        {
            ClassNames = loaded.State.ClassNames,
            Palette = loaded.Palette,
            MeanRgb = normalization?.MeanRgb,
            StdRgb = normalization?.StdRgb,
            ModelName = loaded.Config.Model.Name,
            Iteration = loaded.State.Iteration,
            Inference = new OnnxInferenceSettings
            {
                Slide = eval.Mode == "slide",
                Window = (eval.Window[0], eval.Window[1]),
                Stride = (eval.Stride[0], eval.Stride[1]),
                Flip = eval.Flip,
            },
        };
        using (loaded.Model)
            OnnxExporter.Export(loaded.Model, output, new OnnxExportOptions
            {
                Opset = opset,
                ArgMax = argMax,
                StaticSize = staticSize,
                Metadata = metadata.ToDictionary(),
            });
        return metadata;
    }
}
