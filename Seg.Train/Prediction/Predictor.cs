using OpenCvSharp;
using Seg.Core.IO;
using Seg.Data;
using Seg.Onnx;
using Seg.Train.Checkpoints;
using Seg.Train.Evaluation;
using Seg.Train.Reports;
using Seg.Train.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Train.Prediction;

/// <summary>
/// <c>predict</c>: predicts each input image with a checkpoint (TorchSharp) or an exported ONNX file (ONNX Runtime
/// through <see cref="OnnxSegmenter"/>) and writes <c>NAME_mask.png</c> (colour mask in the dataset palette),
/// <c>NAME_overlay.png</c> and <c>NAME_labels.png</c> (class indices as 8-bit grey levels) with the same code.
/// </summary>
public static class Predictor
{
    /// <summary>Predicts every image of <paramref name="input"/> (a file or a directory) into <paramref name="output"/>
    /// with a checkpoint, rebuilt from the checkpoint alone; returns the count. It predicts in the precision the run
    /// trained in unless <paramref name="overrides"/> set <c>train.precision</c>.</summary>
    public static int Run(string checkpoint, string input, string output, CancellationToken ct = default, IReadOnlyList<string>? overrides = null)
    {
        var loaded = CheckpointModel.Load(checkpoint, overrides);
        var device = RunFactory.ResolveDevice(loaded.Config.Train.Device, checkpoint);
        var precision = RunPrecision.ForInference(loaded.Config.Train.Precision, overrides ?? [], loaded.State.Precision, device);
        var model = loaded.Model;
        model.to(device);

        var palette = loaded.Palette;
        var dataset = new ImageFilesDataset(PlanOutputs(ImageFilesDataset.Find(input), output), loaded.State.ClassNames, palette);
        var pipeline = loaded.ValPipeline();
        using var loader = new SegmentationLoader(dataset, pipeline,
            new LoaderOptions { BatchSize = 1, Workers = 1, Shuffle = false, DropLast = false }, device);
        Directory.CreateDirectory(output);
        var count = 0;
        using (no_grad())
        {
            foreach (var batch in loader.Epoch(0, ct))
            {
                using (batch)
                using (var scope = NewDisposeScope())
                {
                    Tensor prediction;
                    using (precision.Autocast(device))
                        prediction = Inference.Probabilities(model, batch.Images, loaded.Config.Eval).argmax(1)[0].cpu();
                    using var image = Visualization.ToImage(batch.Images[0].cpu(), pipeline.Normalization);
                    using var labels = Visualization.ToLabelMat(prediction);
                    Write(Path.Combine(output, batch.Ids[0]), image, labels, palette);
                    count++;
                }
            }
        }
        return count;
    }

    /// <summary>Predicts every image of <paramref name="input"/> (a file or a directory) into <paramref name="output"/>
    /// with an ONNX file written by <c>export</c> (its metadata gives palette, normalisation and eval settings);
    /// returns the count.</summary>
    public static int RunOnnx(string model, string input, string output, CancellationToken ct = default)
    {
        using var segmenter = OnnxSegmenter.Load(model);
        var palette = segmenter.Metadata.Palette;
        if (palette.Count == 0)
            throw new InvalidDataException($"{model}: its metadata has no '{OnnxModelMetadata.Keys.Palette}' to colour the masks with (was it written by seg export?).");
        var dataset = new ImageFilesDataset(PlanOutputs(ImageFilesDataset.Find(input), output), segmenter.Metadata.ClassNames, palette);
        Directory.CreateDirectory(output);
        for (int i = 0; i < dataset.Count; i++)
        {
            ct.ThrowIfCancellationRequested();
            using var sample = dataset.Get(i);
            using var labels = segmenter.Predict(sample.Image);
            Write(Path.Combine(output, sample.Id), sample.Image, labels, palette);
        }
        return dataset.Count;
    }

    /// <summary>The suffixes of the three files written for each image <c>NAME.ext</c>: <c>NAME_mask.png</c>,
    /// <c>NAME_overlay.png</c>, <c>NAME_labels.png</c>.</summary>
    public static readonly IReadOnlyList<string> OutputSuffixes = ["_mask.png", "_overlay.png", "_labels.png"];

    /// <summary>
    /// Checks, before anything is predicted, that the outputs of <paramref name="inputs"/> in <paramref name="output"/>
    /// are all distinct and replace none of the inputs (as with <c>--output</c> equal to <c>--input</c>, where a second
    /// run would overwrite and re-read its own outputs), and that none of them is a link or a device; returns the inputs.
    /// </summary>
    /// <exception cref="IOException">Two images with one name (<c>a.png</c>, <c>a.jpg</c>), an output that is an input, or
    /// one that is not a regular file; the message names the files.</exception>
    public static IReadOnlyList<string> PlanOutputs(IReadOnlyList<string> inputs, string output)
    {
        var inputSet = inputs.Select(Path.GetFullPath).ToHashSet(StringComparer.Ordinal);
        var writers = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var image in inputs)
            foreach (var suffix in OutputSuffixes)
            {
                var target = Path.GetFullPath(Path.Combine(output, Path.GetFileNameWithoutExtension(image) + suffix));
                if (writers.TryGetValue(target, out var other))
                    throw new IOException($"predict: {other} and {image} would both write {target}; give images distinct names " +
                                          "(apart from the extension), or predict them into separate --output folders.");
                if (inputSet.Contains(target))
                    throw new IOException($"predict: the output {target} (of {image}) is itself one of the --input images; Seg does not " +
                                          "overwrite its inputs or predict its own outputs: choose an --output outside --input.");
                FileChecks.RequireWritableFile(target, "predict --output");
                writers[target] = image;
            }
        return inputs;
    }

    /// <summary>The three pictures of one prediction: <paramref name="labels"/> (CV_32SC1) over the 8-bit BGR image.</summary>
    static void Write(string stem, Mat imageBgr, Mat labels, IReadOnlyList<(byte R, byte G, byte B)> palette)
    {
        using (var mask = Visualization.Colorize(labels, palette))
            Save(stem + "_mask.png", mask);
        using (var overlay = Visualization.Overlay(imageBgr, labels, palette, skipBackground: false))
            Save(stem + "_overlay.png", overlay);
        using var grey = new Mat();
        labels.ConvertTo(grey, MatType.CV_8UC1);
        Save(stem + "_labels.png", grey);
    }

    static void Save(string path, Mat picture) => PngFile.Write(path, picture);
}
