using OpenCvSharp;
using Seg.Data;
using Seg.Train.Checkpoints;
using Seg.Train.Config;
using Seg.Train.Evaluation;
using Seg.Train.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Train.Prediction;

/// <summary>
/// <c>predict</c>: rebuilds the model from a checkpoint alone (it carries its config, class names and palette),
/// predicts each input image and writes <c>NAME_mask.png</c> (colour mask in the dataset palette),
/// <c>NAME_overlay.png</c> and <c>NAME_labels.png</c> (class indices as 8-bit grey levels).
/// </summary>
public static class Predictor
{
    /// <summary>Predicts every image of <paramref name="input"/> (a file or a directory) into <paramref name="output"/>; returns the count.</summary>
    public static int Run(string checkpoint, string input, string output, CancellationToken ct = default)
    {
        var state = CheckpointFile.ReadState(checkpoint);
        var config = ConfigLoader.Parse(state.ConfigYaml, checkpoint, state.Overrides);
        var device = RunFactory.ResolveDevice(config.Train.Device, checkpoint);
        var model = RunFactory.CreateModel(config.Model, state.ClassNames.Count, checkpoint);
        CheckpointFile.Load(checkpoint, model);
        model.to(device);
        model.eval();

        var palette = state.Palette.Select(c => ((byte)c[0], (byte)c[1], (byte)c[2])).ToList();
        var dataset = new ImageFilesDataset(ImageFilesDataset.Find(input), state.ClassNames, palette);
        var pipeline = RunFactory.ValPipeline(config.Data, RunFactory.TrainPipeline(config.Data, checkpoint), checkpoint);
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
                    var prediction = Inference.Probabilities(model, batch.Images, config.Eval).argmax(1)[0].cpu();
                    var stem = Path.Combine(output, batch.Ids[0]);
                    using (var mask = Visualization.Colorize(prediction, palette))
                        Cv2.ImWrite(stem + "_mask.png", mask);
                    using (var overlay = Visualization.Overlay(batch.Images[0].cpu(), prediction, palette, pipeline.Normalization, skipBackground: false))
                        Cv2.ImWrite(stem + "_overlay.png", overlay);
                    using (var labels = Visualization.ToLabelMat(prediction))
                    using (var grey = new Mat())
                    {
                        labels.ConvertTo(grey, MatType.CV_8UC1);
                        Cv2.ImWrite(stem + "_labels.png", grey);
                    }
                    count++;
                }
            }
        }
        return count;
    }
}
