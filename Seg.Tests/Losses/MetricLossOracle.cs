namespace Seg.Tests.Losses;

/// <summary>
/// The Jaccard/Dice/Tversky metric losses in plain doubles, written from the papers' definitions with loops and
/// without the L1 identity the library uses: per pixel (x + y − |x − y|)/2 = min(x, y), so here tp = Σ min(x, y),
/// fp = Σ max(x − y, 0), fn = Σ max(y − x, 0). The aggregations follow the official code's reduce: per dataset (counts
/// summed over images, mean over active classes), per image (mean over the image's active classes, then over images
/// with one), per class (mean over the images where the class is active, then over classes with one).
/// </summary>
internal static class MetricLossOracle
{
    public sealed record Options
    {
        public double Alpha { get; init; } = 1;
        public double Beta { get; init; } = 1;
        public double Gamma { get; init; } = 1;
        public double PerDataset { get; init; } = 1;
        public double PerImage { get; init; }
        public double PerClass { get; init; }
        public double Smooth { get; init; } = 1;
        public bool LogLoss { get; init; }
        public double[]? Weights { get; init; }
        /// <summary>"present", "all" or "only".</summary>
        public string Classes { get; init; } = "present";
        public long[]? Only { get; init; }
        public double Threshold { get; init; } = 0.01;
    }

    /// <summary>Softmax over classes of logits [B][C][P].</summary>
    public static double[][][] Softmax(double[][][] logits)
    {
        int b = logits.Length, c = logits[0].Length, n = logits[0][0].Length;
        var p = new double[b][][];
        for (int i = 0; i < b; i++)
        {
            p[i] = new double[c][];
            for (int k = 0; k < c; k++) p[i][k] = new double[n];
            for (int j = 0; j < n; j++)
            {
                double max = Enumerable.Range(0, c).Max(k => logits[i][k][j]);
                double sum = Enumerable.Range(0, c).Sum(k => Math.Exp(logits[i][k][j] - max));
                for (int k = 0; k < c; k++) p[i][k][j] = Math.Exp(logits[i][k][j] - max) / sum;
            }
        }
        return p;
    }

    /// <summary>Hard labels [B][P] as one-hot [B][C][P] (zero where ignored) and the valid mask [B][P].</summary>
    public static (double[][][] Y, bool[][] Valid) OneHot(long[][] labels, int classes, long? ignore)
    {
        var valid = labels.Select(r => r.Select(v => ignore is not long i || v != i).ToArray()).ToArray();
        var y = labels.Select((r, b) => Enumerable.Range(0, classes)
            .Select(c => r.Select((v, j) => valid[b][j] && v == c ? 1.0 : 0.0).ToArray()).ToArray()).ToArray();
        return (y, valid);
    }

    /// <summary>Soft labels [B][C][P]: a pixel is valid when its label vector is not all zero.</summary>
    public static bool[][] ValidOfSoft(double[][][] y) =>
        y.Select(img => Enumerable.Range(0, img[0].Length).Select(j => img.Any(row => row[j] != 0)).ToArray()).ToArray();

    /// <summary>The loss of logits [B][C][P] against labels [B][C][P] (zero where not valid).</summary>
    public static double Loss(double[][][] logits, double[][][] y, bool[][] valid, Options o)
    {
        var p = Softmax(logits);
        int batch = p.Length, classes = p[0].Length, n = p[0][0].Length;
        var tp = new double[batch, classes];
        var fp = new double[batch, classes];
        var fn = new double[batch, classes];
        var active = new bool[batch, classes];
        for (int b = 0; b < batch; b++)
        {
            bool labelled = valid[b].Any(v => v);
            for (int c = 0; c < classes; c++)
            {
                double maxLabel = 0;
                for (int j = 0; j < n; j++)
                {
                    double x = valid[b][j] ? p[b][c][j] : 0, t = y[b][c][j];
                    tp[b, c] += Math.Min(x, t);
                    fp[b, c] += Math.Max(x - t, 0);
                    fn[b, c] += Math.Max(t - x, 0);
                    maxLabel = Math.Max(maxLabel, t);
                }
                active[b, c] = o.Classes switch
                {
                    "present" => maxLabel > o.Threshold,
                    "all" => labelled,
                    _ => labelled && o.Only!.Contains(c),
                };
            }
        }

        double ClassLoss(double t, double f, double m, int c)
        {
            double index = (t + o.Smooth) / (t + o.Alpha * f + o.Beta * m + o.Smooth);
            double loss = o.LogLoss ? -Math.Log(index) : 1 - index;
            return (o.Weights?[c] ?? 1) * Math.Pow(Math.Max(loss, 0), o.Gamma);
        }

        double total = 0;
        if (o.PerDataset > 0)
        {
            var losses = new List<double>();
            for (int c = 0; c < classes; c++)
            {
                if (!Enumerable.Range(0, batch).Any(b => active[b, c])) continue;
                double t = 0, f = 0, m = 0;
                for (int b = 0; b < batch; b++) { t += tp[b, c]; f += fp[b, c]; m += fn[b, c]; }
                losses.Add(ClassLoss(t, f, m, c));
            }
            total += o.PerDataset * (losses.Count == 0 ? 0 : losses.Average());
        }
        if (o.PerImage > 0)
        {
            var images = new List<double>();
            for (int b = 0; b < batch; b++)
            {
                var losses = Enumerable.Range(0, classes).Where(c => active[b, c]).Select(c => ClassLoss(tp[b, c], fp[b, c], fn[b, c], c)).ToList();
                if (losses.Count > 0) images.Add(losses.Average());
            }
            total += o.PerImage * (images.Count == 0 ? 0 : images.Average());
        }
        if (o.PerClass > 0)
        {
            var perClass = new List<double>();
            for (int c = 0; c < classes; c++)
            {
                var losses = Enumerable.Range(0, batch).Where(b => active[b, c]).Select(b => ClassLoss(tp[b, c], fp[b, c], fn[b, c], c)).ToList();
                if (losses.Count > 0) perClass.Add(losses.Average());
            }
            total += o.PerClass * (perClass.Count == 0 ? 0 : perClass.Average());
        }
        return total;
    }
}
