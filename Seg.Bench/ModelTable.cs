using Seg.Models;
using Seg.Models.Export;
using static TorchSharp.torch;

namespace Seg.Bench;

/// <summary>
/// <c>Seg.Bench model-table [names…]</c>: the rows of docs/models.md's table: parameters (21 classes for segmentation
/// models, 1000 for classifiers), forward FLOPs at 512×512 counted on the model's ONNX export at 128×128 by
/// <see cref="OnnxFlops"/> and scaled by 16, and the pretrained weights torchvision has.
/// </summary>
public static class ModelTable
{
    /// <summary>The size counted at: every feature size of Seg's models at 512 is 4× the one at 128 (strides ≤ 32).</summary>
    const int CountSize = 128;

    /// <summary>Prints the table's rows for <paramref name="names"/> (all of <c>ModelFactory.Names</c> when empty);
    /// returns the exit code.</summary>
    public static int Run(string[] names)
    {
        var dir = Directory.CreateTempSubdirectory("seg-model-table-").FullName;
        try
        {
            foreach (var name in names.Length > 0 ? names : ModelFactory.Names)
            {
                bool classifier = !name.Contains('_') || name.StartsWith("mobilenet", StringComparison.Ordinal) || name.StartsWith("efficientnet", StringComparison.Ordinal)
                    || name.StartsWith("convnext", StringComparison.Ordinal) || name.StartsWith("resnext", StringComparison.Ordinal);
                if (name == "unet") classifier = false;
                using var model = ModelFactory.Create(name, classifier ? 1000 : 21);
                long parameters = model.parameters().Sum(p => p.numel());
                model.eval();
                var file = Path.Combine(dir, "model.onnx");
                OnnxExporter.Export(model, file, new OnnxExportOptions { StaticSize = (CountSize, CountSize) });
                double flops = OnnxFlops.Count(file, CountSize, 512);
                File.Delete(file);
                var pretrained = string.Join(", ", PretrainedWeights.Available(name));
                Console.WriteLine($"| `{name}` | {parameters / 1e6:F2} M | {flops / 1e9:F1} G | {(pretrained.Length == 0 ? "–" : pretrained)} |");
            }
            return 0;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
