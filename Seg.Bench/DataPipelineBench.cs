using BenchmarkDotNet.Attributes;
using OpenCvSharp;
using Seg.Data;
using Seg.Data.Datasets;
using Seg.Data.Imaging;
using static TorchSharp.torch;
using Size = OpenCvSharp.Size;

namespace Seg.Bench;

/// <summary>
/// Throughput of the VOC-style training pipeline: decode a 500×375 JPEG and a palette PNG, random scale 0.5–2.0,
/// random crop 321×321, horizontal flip, normalize, pack [8, 3, 321, 321] + [8, 321, 321] tensors. One operation
/// is one image, so images/s = 1 / Mean. Synthetic VOC files are written to a temp directory in setup.
/// </summary>
[MemoryDiagnoser(false)]
public class DataPipelineBench
{
    const int Images = 48, BatchSize = 8, Batches = 16;
    string root = "";
    SegmentationLoader? loader;

    /// <summary>Loader worker threads.</summary>
    [Params(1, 2)]
    public int Workers { get; set; }

    /// <summary>OpenCV's own thread count (Cv2.SetNumThreads); 0 leaves OpenCV's default (one per core).</summary>
    /// <summary>OpenCV's own thread count (0: OpenCV's default).</summary>
    [Params(0, 1)]
    public int OpenCvThreads { get; set; }

    /// <summary>Writes the synthetic VOC files and builds the loader.</summary>
    [GlobalSetup]
    public void Setup()
    {
        if (OpenCvThreads > 0) Cv2.SetNumThreads(OpenCvThreads);
        Seg.Core.SegRuntime.Initialize();
        root = Path.Combine(Path.GetTempPath(), "segbench-voc-" + Environment.ProcessId);
        WriteSyntheticVoc(root);
        var dataset = DatasetFactory.Create(new DatasetOptions { Type = "voc", Root = root, Split = "train" });
        var pipeline = TransformPipeline.FromConfig(new (string, IReadOnlyDictionary<string, object?>)[]
        {
            ("random_scale", new Dictionary<string, object?> { ["range"] = new[] { 0.5, 2.0 } }),
            ("random_crop", new Dictionary<string, object?> { ["size"] = 321 }),
            ("horizontal_flip", new Dictionary<string, object?>()),
            ("normalize", new Dictionary<string, object?>()),
        });
        loader = new SegmentationLoader(dataset, pipeline, new LoaderOptions { BatchSize = BatchSize, Workers = Workers }, CPU);
    }

    /// <summary>Disposes the loader and deletes the files.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        loader?.Dispose();
        try { Directory.Delete(root, recursive: true); } catch (IOException) { }
    }

    /// <summary>Decodes, augments and batches the images; timed per image.</summary>
    [Benchmark(OperationsPerInvoke = BatchSize * Batches)]
    public long TrainPipeline()
    {
        long pixels = 0;
        foreach (var batch in loader!.Iterate().Take(Batches))
            using (batch) pixels += batch.Labels.shape[1];
        return pixels;
    }

    // Natural-looking content (smooth blobs, edges, noise) so that JPEG sizes and decode cost are realistic.
    static void WriteSyntheticVoc(string root)
    {
        var jpeg = Directory.CreateDirectory(Path.Combine(root, "JPEGImages")).FullName;
        var seg = Directory.CreateDirectory(Path.Combine(root, "SegmentationClass")).FullName;
        var sets = Directory.CreateDirectory(Path.Combine(root, "ImageSets", "Segmentation")).FullName;
        var rng = new Random(1);
        var ids = new List<string>();
        for (int i = 0; i < Images; i++)
        {
            var id = $"2007_{i:D6}";
            ids.Add(id);
            using var image = new Mat(375, 500, MatType.CV_8UC3);
            Cv2.Randu(image, Scalar.All(0), Scalar.All(255));
            Cv2.GaussianBlur(image, image, new Size(31, 31), 12);
            using var mask = new Mat(375, 500, MatType.CV_8UC1, Scalar.All(0));
            for (int k = 0; k < 4; k++)
            {
                var centre = new Point(rng.Next(500), rng.Next(375));
                var axes = new Size(30 + rng.Next(120), 30 + rng.Next(100));
                int label = rng.Next(1, 21);
                Cv2.Ellipse(image, centre, axes, rng.Next(180), 0, 360, new Scalar(rng.Next(256), rng.Next(256), rng.Next(256)), -1, LineTypes.AntiAlias);
                Cv2.Ellipse(mask, centre, axes, 0, 0, 360, Scalar.All(label), -1);
                Cv2.Ellipse(mask, centre, axes, 0, 0, 360, Scalar.All(255), 3); // VOC's ignore border
            }
            using var noise = new Mat(375, 500, MatType.CV_8UC3);
            Cv2.Randn(noise, Scalar.All(0), Scalar.All(8));
            Cv2.Add(image, noise, image);
            Cv2.ImWrite(Path.Combine(jpeg, id + ".jpg"), image, new ImageEncodingParam(ImwriteFlags.JpegQuality, 90));
            PalettePng.Write(Path.Combine(seg, id + ".png"), mask, VocClasses.Palette);
        }
        File.WriteAllLines(Path.Combine(sets, "train.txt"), ids);
    }
}
