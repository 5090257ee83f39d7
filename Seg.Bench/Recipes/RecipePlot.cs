using ScottPlot;

namespace Seg.Bench.Recipes;

/// <summary>
/// <c>summary.png</c> of <c>Seg.Bench recipes</c>: for each recipe and metric, one dot per seed and the mean with a
/// ± one standard deviation bar beside them, so a reader sees at once whether two recipes' spreads overlap.
/// </summary>
public static class RecipePlot
{
    /// <summary>Draws <paramref name="summary"/> to <paramref name="path"/>.</summary>
    public static void Save(string path, RecipeSummary summary)
    {
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        var metrics = RecipeSummary.Metrics;
        const double groupWidth = 0.8;
        var step = groupWidth / metrics.Count;
        for (var m = 0; m < metrics.Count; m++)
        {
            var (key, label) = metrics[m];
            var color = palette.GetColor(m);
            var offset = -groupWidth / 2 + (m + 0.5) * step;
            var dotX = new List<double>();
            var dotY = new List<double>();
            var meanX = new List<double>();
            var means = new List<double>();
            var stds = new List<double>();
            for (var r = 0; r < summary.Rows.Count; r++)
            {
                var row = summary.Rows[r];
                var x = r + offset;
                foreach (var run in row.Runs) { dotX.Add(x - step * 0.2); dotY.Add(run.Scores[key]); }
                meanX.Add(x + step * 0.15);
                means.Add(row.Stats[key].Mean);
                stds.Add(row.Stats[key].Std);
            }
            var dots = plot.Add.ScatterPoints(dotX.ToArray(), dotY.ToArray());
            dots.Color = color.WithAlpha(0.6);
            dots.MarkerSize = 5;
            var mean = plot.Add.ScatterPoints(meanX.ToArray(), means.ToArray());
            mean.Color = color;
            mean.MarkerShape = MarkerShape.FilledSquare;
            mean.MarkerSize = 7;
            mean.LegendText = label;
            var bars = plot.Add.ErrorBar(meanX.ToArray(), means.ToArray(), stds.ToArray());
            bars.Color = color;
        }
        plot.Axes.Bottom.SetTicks(Enumerable.Range(0, summary.Rows.Count).Select(i => (double)i).ToArray(),
            summary.Rows.Select(r => r.Recipe).ToArray());
        plot.Axes.Bottom.TickLabelStyle.Rotation = 20;
        plot.Axes.Bottom.TickLabelStyle.Alignment = Alignment.UpperLeft;
        plot.Axes.Bottom.MinimumSize = 90;
        plot.Axes.SetLimitsX(-0.6, Math.Max(1, summary.Rows.Count) - 0.4);
        var seeds = summary.Rows.Count > 0 ? summary.Rows.Max(r => r.Runs.Count) : 0;
        plot.Title($"Validation scores per recipe ({seeds} seeds: dots; mean ± std: squares and bars)");
        plot.YLabel("score");
        plot.ShowLegend(Alignment.UpperRight);
        plot.SavePng(path, 1000, 520);
    }
}
