using OpenCvSharp;
using Seg.Onnx;

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
        using var image = Cv2.ImRead(path, ImreadModes.Color);
        if (image.Empty()) throw new InvalidDataException($"{path}: not a readable image");
        using var labels = segmenter.Predict(image);
        var counts = new int[Math.Max(segmenter.NumClasses, 1)];
        using var mask = new Mat(labels.Size(), MatType.CV_8UC3);
        int rows = labels.Rows, cols = labels.Cols;
        for (int y = 0; y < rows; y++)
            for (int x = 0; x < cols; x++)
            {
                int c = labels.At<int>(y, x);
                if (c < counts.Length) counts[c]++;
                var (r, g, b) = c < meta.Palette.Count ? meta.Palette[c] : ((byte)255, (byte)255, (byte)255);
                mask.Set(y, x, new Vec3b(b, g, r));
            }
        var output = Path.ChangeExtension(path, null) + "_mask.png";
        Cv2.ImWrite(output, mask);
        var shares = counts.Select((n, c) => (n, c)).Where(t => t.n > 0)
            .Select(t => $"{(t.c < meta.ClassNames.Count ? meta.ClassNames[t.c] : t.c.ToString())} {100.0 * t.n / labels.Total():F1}%");
        Console.WriteLine($"{path}: {string.Join(", ", shares)} -> {output}");
    }
    return 0;
}
catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or NotSupportedException or InvalidOperationException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}
