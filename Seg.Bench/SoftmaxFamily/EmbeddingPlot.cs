using ScottPlot;
using static TorchSharp.torch;

namespace Seg.Bench.SoftmaxFamily;

/// <summary>Scatter of 2-D test embeddings coloured by class (the figure of Wen et al. 2016).</summary>
internal static class EmbeddingPlot
{
    public static void Save(string path, Tensor embedding, Tensor labels, string title)
    {
        var points = embedding.to_type(ScalarType.Float64).contiguous().data<double>().ToArray();
        var classes = labels.data<long>().ToArray();
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        for (var c = 0; c < FashionMnist.ClassNames.Length; c++)
        {
            var members = Enumerable.Range(0, classes.Length).Where(i => classes[i] == c).ToArray();
            var scatter = plot.Add.ScatterPoints(
                members.Select(i => points[2 * i]).ToArray(),
                members.Select(i => points[2 * i + 1]).ToArray(),
                palette.GetColor(c));
            scatter.MarkerSize = 2;
            scatter.LegendText = FashionMnist.ClassNames[c];
        }
        plot.Title(title, size: 12);
        plot.ShowLegend(Edge.Right);
        plot.SavePng(path, 900, 700);
    }
}
