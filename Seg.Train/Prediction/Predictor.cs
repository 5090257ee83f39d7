using OpenCvSharp;
using Seg.Data;
using Seg.Onnx;
using Seg.Train.Checkpoints;
using Seg.Train.Evaluation;
using Seg.Train.Reports;
using Seg.Train.Training;
using TorchSharp;
using static TorchSharp.torch;
using Seg.Platform.IO;

namespace Seg.Train.Prediction;

/// <summary>
/// <c>predict</c>: predicts each input image with a checkpoint (TorchSharp) or an exported ONNX file (ONNX Runtime
/// through <see cref="OnnxSegmenter"/>) and writes <c>NAME_mask.png</c> (colour mask in the dataset palette),
/// <c>NAME_overlay.png</c> and <c>NAME_labels.png</c> (class indices as grey levels: 8-bit up to 256 classes, 16-bit
/// beyond) with the same code.
/// </summary>
public static class Predictor
{
    /// <summary>Predicts every image of <paramref name="input"/> (a file or a directory) into <paramref name="output"/>
    /// with a checkpoint, rebuilt from the checkpoint alone; returns the count. It predicts in the precision the run
    /// trained in unless <paramref name="overrides"/> set <c>train.precision</c>.</summary>
    /// <param name="checkpoint">A <c>.ckpt</c> written by <c>train</c>.</param>
    /// <param name="input">An image file or a folder of images.</param>
    /// <param name="output">The folder for the pictures.</param>
    /// <param name="ct">Stops between images.</param>
    /// <param name="overrides"><c>--set</c> assignments to the checkpoint's config.</param>
    /// <param name="allowNonFinite">Draw pixels whose output is NaN or infinite as their arg-max (counted on
    /// <paramref name="warnings"/>) instead of stopping with <see cref="NonFiniteOutputException"/>.</param>
    /// <param name="warnings">Where the count of such pixels goes.</param>
    /// <param name="device"><c>--device</c>: <c>auto</c> (default), <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c>, whatever
    /// device the checkpoint was trained on.</param>
    public static int Run(string checkpoint, string input, string output, CancellationToken ct = default,
        IReadOnlyList<string>? overrides = null, bool allowNonFinite = false, TextWriter? warnings = null, string? device = null)
    {
        var loaded = CheckpointModel.Load(checkpoint, overrides);
        var target = RunFactory.ResolveDeviceOption(device);
        var precision = RunPrecision.ForInference(loaded.Config.Train.Precision, overrides ?? [], loaded.State.Precision, target);
        var model = loaded.Model;
        model.to(target);

        var palette = loaded.Palette;
        // Per pixel after the decode: the input tensor, then logits and probabilities of every class (twice with flip).
        long perPixel = Seg.Data.Imaging.SampleFiles.TensorBytesPerPixel + 8L * Math.Max(loaded.State.ClassNames.Count, 1) * (loaded.Config.Eval.Flip ? 2 : 1);
        var dataset = new ImageFilesDataset(PlanOutputs(ImageFilesDataset.Find(input), output), loaded.State.ClassNames, palette, perPixel);
        var pipeline = loaded.ValPipeline();
        using var loader = new SegmentationLoader(dataset, pipeline,
            new LoaderOptions { BatchSize = 1, Workers = 1, Shuffle = false, DropLast = false }, target);
        Directory.CreateDirectory(output);
        var count = 0;
        long nonFinite = 0;
        using (no_grad())
        {
            foreach (var batch in loader.Epoch(0, ct))
            {
                using (batch)
                using (var scope = NewDisposeScope())
                {
                    Tensor probabilities;
                    using (precision.Autocast(target))
                        probabilities = Inference.Probabilities(model, batch.Images, loaded.Config.Eval);
                    nonFinite += Evaluator.CheckFinite(probabilities, batch.Ids, allowNonFinite);
                    var prediction = probabilities.argmax(1)[0].cpu();
                    using var image = Visualization.ToImage(batch.Images[0].cpu(), pipeline.Normalization);
                    using var labels = Visualization.ToLabelMat(prediction);
                    Write(Path.Combine(output, batch.Ids[0]), image, labels, palette, loaded.State.ClassNames.Count);
                    count++;
                }
            }
        }
        if (nonFinite > 0)
            warnings?.WriteLine($"warning: the model's output was NaN or infinite at {nonFinite} pixel(s); they are drawn as their arg-max (--allow-nonfinite)");
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
        var dataset = new ImageFilesDataset(PlanOutputs(ImageFilesDataset.Find(input), output), segmenter.Metadata.ClassNames, palette, segmenter.PipelineBytesPerPixel);
        Directory.CreateDirectory(output);
        for (int i = 0; i < dataset.Count; i++)
        {
            ct.ThrowIfCancellationRequested();
            using var sample = dataset.Get(i);
            using var labels = PredictNamed(segmenter, sample.Image, dataset.Files[i]);
            Write(Path.Combine(output, sample.Id), sample.Image, labels, palette, segmenter.Metadata.ClassNames.Count);
        }
        return dataset.Count;
    }

    // The segmenter's errors name the model; these name the image too.
    static Mat PredictNamed(OnnxSegmenter segmenter, Mat image, string path)
    {
        try { return segmenter.Predict(image); }
        catch (Exception e) when (e is InvalidDataException or ArgumentException or InvalidOperationException)
        {
            throw new InvalidDataException($"{path}: {e.Message}", e);
        }
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
    static void Write(string stem, Mat imageBgr, Mat labels, IReadOnlyList<(byte R, byte G, byte B)> palette, int classes)
    {
        using (var mask = Visualization.Colorize(labels, palette))
            Save(stem + "_mask.png", mask);
        using (var overlay = Visualization.Overlay(imageBgr, labels, palette, skipBackground: false))
            Save(stem + "_overlay.png", overlay);
        using var grey = LabelPicture(labels, classes, stem + "_labels.png");
        Save(stem + "_labels.png", grey);
    }

    /// <summary>
    /// The class indices as grey levels: 8-bit when every class id fits a byte (up to 256 classes), else 16-bit (up to
    /// 65536), so that no label is clipped to 255. A label outside [0, classes) is refused, naming the file.
    /// </summary>
    /// <exception cref="InvalidDataException">A label below 0 or not below <paramref name="classes"/>, or more than 65536 classes.</exception>
    public static Mat LabelPicture(Mat labels, int classes, string name)
    {
        if (classes > 65536) throw new InvalidDataException($"{name}: {classes} classes do not fit a 16-bit label image");
        Cv2.MinMaxLoc(labels, out double min, out double max);
        if (min < 0 || max >= classes)
            throw new InvalidDataException($"{name}: the model predicted label {(min < 0 ? min : max)}, outside the {classes} classes [0, {classes - 1}]");
        var grey = new Mat();
        labels.ConvertTo(grey, classes <= 256 ? MatType.CV_8UC1 : MatType.CV_16UC1);
        return grey;
    }

    static void Save(string path, Mat picture) => PngFile.Write(path, picture);
}
