using OpenCvSharp;
using Seg.Data.Datasets;
using Seg.Onnx;
using Seg.Tests.Train;
using Seg.Train.Checkpoints;
using Seg.Train.Cli;
using Seg.Train.Config;
using Seg.Train.Prediction;
using Seg.Train.Training;

namespace Seg.Tests.Export;

/// <summary>
/// The deployment round trip through the command line: a checkpoint of the tiny recipe (with eval.flip on, written
/// with CheckpointFile.Save, so that no training is needed), <c>export</c>, then <c>predict</c> the same images with
/// <c>--checkpoint</c> (TorchSharp) and with <c>--model</c> (ONNX Runtime through Seg.Onnx): the same label images,
/// masks and overlays.
/// </summary>
public sealed class ExportAndPredictTests : IDisposable
{
    readonly OnnxTestKit.TempDir dir = new();

    public void Dispose() => dir.Dispose();

    // The tiny recipe's model at iteration 6 with random weights (the classifier's bias zeroed, so that no class wins
    // everywhere by its bias alone) and the shapes dataset's classes. The weights come from a generator of the test's
    // own: the global one is shared with the tests that run beside this one, and some of its draws gave a model that
    // predicts one class everywhere, which the test rightly refuses.
    static string WriteCheckpoint(string path, params string[] overrides)
    {
        Seg.Core.SegRuntime.Initialize();
        var config = ConfigLoader.Parse(TinyRun.Yaml, "tiny.yaml", overrides);
        using var model = RunFactory.CreateModel(config.Model, ShapesDataset.Names.Count, "tiny.yaml");
        var generator = new TorchSharp.torch.Generator(11);
        using (TorchSharp.torch.no_grad())
            foreach (var (name, p) in model.named_parameters())
                if (name == "classifier.bias") p.zero_();
                else if (p.dim() > 1)   // convolution weights, He-scaled
                    p.copy_(TorchSharp.torch.randn(p.shape, generator: generator) * Math.Sqrt(2.0 * p.shape[0] / p.numel()));
        var state = new CheckpointState(6, -1, 0, TinyRun.Yaml, overrides, ShapesDataset.Names,
            [[0, 0, 0], [220, 20, 60], [0, 128, 255], [255, 200, 0]], CheckpointFile.CaptureRng());
        CheckpointFile.Save(path, state, model, null);
        return path;
    }

    [Fact]
    public void PredictWithTheExportedModelWritesWhatTheCheckpointWrites()
    {
        var checkpoint = WriteCheckpoint(dir.File("run/last.ckpt"), "eval.flip=true");
        var onnx = dir.File("deploy/tiny.onnx");
        Assert.Equal(0, SegCli.Run(["export", "--checkpoint", checkpoint, "--output", onnx]));

        using (var segmenter = OnnxSegmenter.Load(onnx))
        {
            Assert.Equal(["background", "circle", "square", "triangle"], segmenter.Metadata.ClassNames.Take(4));
            Assert.Equal("unet", segmenter.Metadata.ModelName);
            Assert.Equal(6, segmenter.Metadata.Iteration);
            Assert.True(segmenter.Inference.Flip);
            Assert.False(segmenter.Inference.Slide);
        }

        var images = dir.File("images");
        Directory.CreateDirectory(images);
        foreach (var (name, h, w) in new[] { ("a", 40, 52), ("b", 37, 29) })
        {
            using var image = new Mat(h, w, MatType.CV_8UC3, new Scalar(40, 90, 160));
            Cv2.Circle(image, new Point(w / 3, h / 2), h / 4, new Scalar(230, 230, 40), -1);
            Cv2.Rectangle(image, new Rect(w / 2, h / 4, w / 3, h / 3), new Scalar(20, 200, 20), -1);
            Cv2.ImWrite(Path.Combine(images, name + ".png"), image);
        }
        Assert.Equal(0, SegCli.Run(["predict", "--checkpoint", checkpoint, "--input", images, "--output", dir.File("torch")]));
        Assert.Equal(0, SegCli.Run(["predict", "--model", onnx, "--input", images, "--output", dir.File("onnx")]));

        foreach (var name in new[] { "a", "b" })
        {
            using var torchLabels = Cv2.ImRead(Path.Combine(dir.File("torch"), name + "_labels.png"), ImreadModes.Unchanged);
            using var onnxLabels = Cv2.ImRead(Path.Combine(dir.File("onnx"), name + "_labels.png"), ImreadModes.Unchanged);
            Assert.Equal((torchLabels.Rows, torchLabels.Cols), (onnxLabels.Rows, onnxLabels.Cols));
            using var differ = new Mat();
            Cv2.Compare(torchLabels, onnxLabels, differ, CmpTypes.NE);
            Cv2.MinMaxLoc(torchLabels, out double low, out double high);
            Assert.True(high > low, $"{name}: one class everywhere would test little");
            // Equal up to near-ties of the two runtimes' float rounding.
            Assert.True(Cv2.CountNonZero(differ) <= torchLabels.Total() / 1000, $"{name}: {Cv2.CountNonZero(differ)} pixels differ");
            foreach (var suffix in new[] { "_mask.png", "_overlay.png" })
            {
                using var a = Cv2.ImRead(Path.Combine(dir.File("torch"), name + suffix), ImreadModes.Color);
                using var b = Cv2.ImRead(Path.Combine(dir.File("onnx"), name + suffix), ImreadModes.Color);
                using var diff = new Mat();
                Cv2.Absdiff(a, b, diff);
                using var grey = diff.CvtColor(ColorConversionCodes.BGR2GRAY);
                grey.SetTo(new Scalar(0), differ); // only where the labels differ may the pictures differ
                Assert.Equal(0, Cv2.CountNonZero(grey));
            }
        }

        // A model file without a palette cannot colour masks: one line naming the file.
        var noPalette = dir.File("bare.onnx");
        using (var model = CheckpointModel.Load(checkpoint).Model)
            Seg.Models.Export.OnnxExporter.Export(model, noPalette, new Seg.Models.Export.OnnxExportOptions());
        var e = Assert.Throws<InvalidDataException>(() => Predictor.RunOnnx(noPalette, images, dir.File("bare")));
        Assert.Contains(noPalette, e.Message);
    }
}
