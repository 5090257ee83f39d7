using OpenCvSharp;
using Seg.Data;
using Seg.Onnx;
using Seg.Train.Checkpoints;
using Seg.Train.Evaluation;
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
    /// with a checkpoint, rebuilt from the checkpoint alone; returns the count.</summary>
    public static int Run(string checkpoint, string input, string output, CancellationToken ct = default)
    {
        var loaded = CheckpointModel.Load(checkpoint);
        var device = RunFactory.ResolveDevice(loaded.Config.Train.Device, checkpoint);
        var model = loaded.Model;
        model.to(device);

        var palette = loaded.Palette;
        // Per pixel after the decode: the input tensor, then logits and probabilities of every class (twice with flip).
        long perPixel = Seg.Data.Imaging.SampleFiles.TensorBytesPerPixel + 8L * Math.Max(loaded.State.ClassNames.Count, 1) * (loaded.Config.Eval.Flip ? 2 : 1);
        var dataset = new ImageFilesDataset(ImageFilesDataset.Find(input), loaded.State.ClassNames, palette, perPixel);
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
                    var prediction = Inference.Probabilities(model, batch.Images, loaded.Config.Eval).argmax(1)[0].cpu();
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
        var dataset = new ImageFilesDataset(ImageFilesDataset.Find(input), segmenter.Metadata.ClassNames, palette, segmenter.PipelineBytesPerPixel);
        Directory.CreateDirectory(output);
        for (int i = 0; i < dataset.Count; i++)
        {
            ct.ThrowIfCancellationRequested();
            using var sample = dataset.Get(i);
            using var labels = PredictNamed(segmenter, sample.Image, dataset.Files[i]);
            Write(Path.Combine(output, sample.Id), sample.Image, labels, palette);
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

    static void Save(string path, Mat picture)
    {
        if (!Cv2.ImWrite(path, picture)) throw new IOException($"cannot write {path}");
    }
}
