using System.Globalization;
using OpenCvSharp;
using Seg.Data;
using Seg.Data.Transforms;
using Seg.Train.Evaluation;

namespace Seg.Train.Reports;

/// <summary>
/// A PNG grid with one row per sample: image, ground-truth overlay, prediction overlay (dataset palette), under
/// column titles, each row captioned (image id, and its score where given), with a colour legend of the classes
/// below, so that the picture reads on its own.
/// </summary>
public static class SampleGrid
{
    const int Caption = 22, Title = 26, LegendRow = 24, Margin = 6;
    static readonly Scalar Ink = new(40, 40, 40);

    /// <summary>Writes the grid; small images are enlarged (nearest neighbour) to at least <paramref name="minSide"/>
    /// pixels. <paramref name="scores"/>, when given, holds each sample's score for its caption (its mIoU^I score, a
    /// fraction; Hershey fonts have no caret, so the caption says "score").</summary>
    public static void Write(string path, IReadOnlyList<EvalSample> samples, IReadOnlyList<(byte R, byte G, byte B)> palette,
        Normalize? normalization, long ignoreIndex, IReadOnlyList<string> classNames, IReadOnlyList<double>? scores = null, int minSide = 160)
    {
        if (samples.Count == 0) return;
        var rows = new List<Mat>();
        try
        {
            for (var n = 0; n < samples.Count; n++)
            {
                var s = samples[n];
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
                var caption = scores is not null && n < scores.Count
                    ? $"{s.Id}   score {(100 * scores[n]).ToString("F1", CultureInfo.InvariantCulture)} %"
                    : s.Id;
                rows.Add(WithStrip(row, Caption, (strip, _) => Text(strip, caption, 4, 0.5)));
                row.Dispose();
            }
            var width = rows.Max(r => r.Cols);
            var cellWidth = (width - 0) / 3;
            rows.Insert(0, Strip(width, Title, strip =>
            {
                string[] titles = ["image", "ground truth", "prediction"];
                for (var i = 0; i < 3; i++) Text(strip, titles[i], i * cellWidth + 4, 0.6);
            }));
            rows.Add(Legend(width, palette, classNames));
            // Rows may differ in width (images of different sizes): pad to the widest.
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

    // One swatch and name per class, wrapped to the grid's width; background (label 0) is not painted in the overlays.
    static Mat Legend(int width, IReadOnlyList<(byte R, byte G, byte B)> palette, IReadOnlyList<string> classNames)
    {
        var entries = classNames.Select((name, i) => (Name: i == 0 ? $"{name} (not painted)" : name, Colour: palette[Math.Min(i, palette.Count - 1)])).ToList();
        var placed = new List<(int X, int Y, string Name, (byte R, byte G, byte B) Colour)>();
        int x = Margin, y = Margin;
        foreach (var (name, colour) in entries)
        {
            var textWidth = Cv2.GetTextSize(name, HersheyFonts.HersheySimplex, 0.5, 1, out _).Width;
            var entryWidth = 18 + 6 + textWidth + 16;
            if (x + entryWidth > width && x > Margin) (x, y) = (Margin, y + LegendRow);
            placed.Add((x, y, name, colour));
            x += entryWidth;
        }
        return Strip(width, y + LegendRow + Margin, strip =>
        {
            foreach (var (px, py, name, (r, g, b)) in placed)
            {
                Cv2.Rectangle(strip, new Rect(px, py + 3, 18, 16), new Scalar(b, g, r), -1);
                Cv2.Rectangle(strip, new Rect(px, py + 3, 18, 16), Ink, 1);
                Cv2.PutText(strip, name, new Point(px + 24, py + 16), HersheyFonts.HersheySimplex, 0.5, Ink, 1, LineTypes.AntiAlias);
            }
        });
    }

    static Mat Strip(int width, int height, Action<Mat> draw)
    {
        var strip = new Mat(height, width, MatType.CV_8UC3, Scalar.White);
        draw(strip);
        return strip;
    }

    // A white strip of the given height above the picture, drawn on, then the picture.
    static Mat WithStrip(Mat picture, int height, Action<Mat, int> draw)
    {
        using var strip = Strip(picture.Cols, height, s => draw(s, picture.Cols));
        var result = new Mat();
        Cv2.VConcat([strip, picture], result);
        return result;
    }

    static void Text(Mat strip, string text, int x, double scale) =>
        Cv2.PutText(strip, text, new Point(x, strip.Rows - 7), HersheyFonts.HersheySimplex, scale, Ink, 1, LineTypes.AntiAlias);
}
