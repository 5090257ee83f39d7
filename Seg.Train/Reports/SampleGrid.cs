using OpenCvSharp;
using Seg.Data;
using Seg.Data.Transforms;
using Seg.Train.Evaluation;

namespace Seg.Train.Reports;

/// <summary>A PNG grid with one row per sample: image, ground-truth overlay, prediction overlay (dataset palette).</summary>
public static class SampleGrid
{
    /// <summary>Writes the grid; small images are enlarged (nearest neighbour) to at least <paramref name="minSide"/> pixels.</summary>
    public static void Write(string path, IReadOnlyList<EvalSample> samples, IReadOnlyList<(byte R, byte G, byte B)> palette,
        Normalize? normalization, long ignoreIndex, int minSide = 160)
    {
        if (samples.Count == 0) return;
        var rows = new List<Mat>();
        try
        {
            foreach (var s in samples)
            {
                using var image = Visualization.ToImage(s.Image, normalization);
                using var truth = Visualization.Overlay(s.Image, s.Label, palette, normalization, ignoreIndex: ignoreIndex);
                using var predicted = Visualization.Overlay(s.Image, s.Prediction, palette, normalization, ignoreIndex: ignoreIndex);
                var scale = Math.Max(1.0, (double)minSide / Math.Min(image.Rows, image.Cols));
                var size = new Size((int)Math.Round(image.Cols * scale), (int)Math.Round(image.Rows * scale));
                var cells = new[] { image, truth, predicted }.Select(m =>
                {
                    var resized = new Mat();
                    Cv2.Resize(m, resized, size, interpolation: InterpolationFlags.Nearest);
                    Cv2.CopyMakeBorder(resized, resized, 2, 2, 2, 2, BorderTypes.Constant, Scalar.White);
                    return resized;
                }).ToArray();
                var row = new Mat();
                Cv2.HConcat(cells, row);
                foreach (var c in cells) c.Dispose();
                rows.Add(row);
            }
            // Rows may differ in width (images of different sizes): pad to the widest.
            var width = rows.Max(r => r.Cols);
            for (var i = 0; i < rows.Count; i++)
                if (rows[i].Cols < width)
                    Cv2.CopyMakeBorder(rows[i], rows[i], 0, 0, 0, width - rows[i].Cols, BorderTypes.Constant, Scalar.White);
            using var grid = new Mat();
            Cv2.VConcat(rows.ToArray(), grid);
            PngFile.Write(path, grid);
        }
        finally
        {
            foreach (var r in rows) r.Dispose();
        }
    }
}
