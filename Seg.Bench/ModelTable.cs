using System.Diagnostics;
using Seg.Models;
using Seg.Models.Export;
using static TorchSharp.torch;

namespace Seg.Bench;

/// <summary>
/// <c>Seg.Bench model-table [names…]</c>: the rows of docs/models.md's table: parameters (21 classes for segmentation
/// models, 1000 for classifiers), forward FLOPs at 512×512 counted on the model's ONNX export by
/// docs/tools/onnx_flops.py (Debian's python3-onnx), and the pretrained weights torchvision has.
/// </summary>
public static class ModelTable
{
    /// <summary>Prints the table's rows for <paramref name="names"/> (all of <c>ModelFactory.Names</c> when empty);
    /// returns the exit code.</summary>
    public static int Run(string[] names)
    {
        var script = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "docs", "tools", "onnx_flops.py"));
        if (!File.Exists(script)) { Console.Error.WriteLine($"missing {script}"); return 1; }
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
                OnnxExporter.Export(model, file, new OnnxExportOptions { StaticSize = (64, 64) });
                var python = new ProcessStartInfo("/usr/bin/python3", [script, file]) { RedirectStandardOutput = true, RedirectStandardError = true };
                using var p = Process.Start(python)!;
                var flops = p.StandardOutput.ReadToEnd().Trim();
                var err = p.StandardError.ReadToEnd();
                p.WaitForExit();
                File.Delete(file);
                if (p.ExitCode != 0) { Console.Error.WriteLine($"{name}: {err}"); return 1; }
                var pretrained = string.Join(", ", PretrainedWeights.Available(name));
                Console.WriteLine($"| `{name}` | {parameters / 1e6:F2} M | {double.Parse(flops, System.Globalization.CultureInfo.InvariantCulture) / 1e9:F1} G | {(pretrained.Length == 0 ? "–" : pretrained)} |");
            }
            return 0;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
