using System.Diagnostics;
using Seg.Models.Export;
using Xunit.Abstractions;

namespace Seg.Tests.Export;

/// <summary>
/// Every exported file passes ONNX's own checker with <c>full_check=True</c> (IR, each node against its operator
/// schema, strict shape inference), run by Debian 12's python3-onnx 1.12 (apt) through
/// Fixtures/onnx/check_models.py. Opt-in: it builds every model, the ResNet-101 ones included.
/// onnx 1.12 knows opsets up to 17, so the files checked are opsets 13–17.
/// </summary>
[Trait("Category", "Heavy")]
public class OnnxCheckerTests(ITestOutputHelper output)
{
    const string Python = "/usr/bin/python3";

    [Fact]
    public void EveryExportedFilePassesOnnxFullCheck()
    {
        Assert.True(File.Exists(Python), $"{Python} not found: apt-get install python3-onnx");
        using var dir = new OnnxTestKit.TempDir();
        var files = new List<string>();
        foreach (var name in OnnxTestKit.Cases.Keys.Concat(OnnxTestKit.HeavyCases.Keys))
        {
            using var model = OnnxTestKit.Build(name);
            files.Add(Export(model, dir.File($"{name}.onnx"), new OnnxExportOptions()));
            files.Add(Export(model, dir.File($"{name}_argmax_static.onnx"), new OnnxExportOptions { ArgMax = true, StaticSize = (97, 75) }));
            if (name == "unet_cosine_head")
                for (int opset = OnnxExporter.MinOpset; opset < 17; opset++)
                    files.Add(Export(model, dir.File($"{name}_opset{opset}.onnx"), new OnnxExportOptions { Opset = opset }));
            // Check in batches: the big files need not all sit on disk at once.
            if (files.Count >= 6) Check(files);
        }
        Check(files);
    }

    static string Export(TorchSharp.torch.nn.Module model, string path, OnnxExportOptions options)
    {
        OnnxExporter.Export(model, path, options);
        return path;
    }

    void Check(List<string> files)
    {
        if (files.Count == 0) return;
        var script = Path.Combine(AppContext.BaseDirectory, "Fixtures", "onnx", "check_models.py");
        var psi = new ProcessStartInfo(Python) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(script);
        foreach (var f in files) psi.ArgumentList.Add(f);
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        output.WriteLine(stdout.Result + stderr.Result);
        Assert.True(process.ExitCode == 0, stdout.Result + stderr.Result);
        Assert.Equal(files.Count, stdout.Result.Split('\n').Count(l => l.StartsWith("ok ")));
        foreach (var f in files) File.Delete(f);
        files.Clear();
    }
}
