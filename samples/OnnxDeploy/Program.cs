using OpenCvSharp;
using Seg.Onnx;
using Seg.Onnx.Imaging;
using Seg.Platform.Native;

// Segments images with a model exported by `seg export` and writes colour masks next to them.
// Usage: OnnxDeploy MODEL.onnx IMAGE... [--cuda]
var cuda = args.Contains("--cuda");
var files = args.Where(a => a != "--cuda").ToArray();
if (files.Length < 2)
{
    Console.Error.WriteLine("usage: OnnxDeploy MODEL.onnx IMAGE... [--cuda]");
    return 2;
}
try
{
    var options = new OnnxSegmenterOptions { ExecutionProvider = cuda ? OnnxExecutionProvider.Cuda : OnnxExecutionProvider.Cpu };
    using var segmenter = OnnxSegmenter.Load(files[0], options);
    var meta = segmenter.Metadata;
    Console.WriteLine($"{meta.ModelName} (iteration {meta.Iteration}), {segmenter.NumClasses} classes: {string.Join(", ", meta.ClassNames)}");
    foreach (var path in files.Skip(1))
    {
        // ReadImage refuses FIFOs, formats other than PNG/JPEG/BMP/TIFF/WebP, and images whose declared size would
        // take more than OnnxSegmenterOptions.MaxImageBytes to predict, naming the file, before decoding.
        using var image = segmenter.ReadImage(path);
        using var labels = segmenter.Predict(image);
        var counts = new int[Math.Max(segmenter.NumClasses, 1)];
        int rows = labels.Rows, cols = labels.Cols;
        for (int y = 0; y < rows; y++)
            for (int x = 0; x < cols; x++)
                if (labels.At<int>(y, x) is var c && c >= 0 && c < counts.Length) counts[c]++;
        using var mask = MaskColours.Colourise(labels, meta.Palette); // the file's palette; unknown labels white
        var output = Path.ChangeExtension(path, null) + "_mask.png";
        Cv2.ImWrite(output, mask);
        var shares = counts.Select((n, c) => (n, c)).Where(t => t.n > 0)
            .Select(t => $"{(t.c < meta.ClassNames.Count ? meta.ClassNames[t.c] : t.c.ToString())} {100.0 * t.n / labels.Total():F1}%");
        Console.WriteLine($"{path}: {string.Join(", ", shares)} -> {output}");
    }
    return 0;
}
catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or NotSupportedException or InvalidOperationException
                              or NativeLoadException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}
