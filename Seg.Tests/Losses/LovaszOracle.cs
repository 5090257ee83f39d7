namespace Seg.Tests.Losses;

/// <summary>
/// Brute-force Lovász losses in plain doubles, straight from the definitions (Berman et al., CVPR 2018): drop
/// ignored pixels, sort the errors of a class in descending order, and weight the i-th error by
/// Δ(first i) − Δ(first i−1), where Δ(M) = |M| / |F ∪ M| is the Jaccard loss of mispredicting the set M
/// (F the class's pixels), counted by enumerating the sets. Means over classes and images follow the documented
/// semantics (sets without eligible rows are left out; nothing eligible gives 0).
/// </summary>
internal static class LovaszOracle
{
    public enum Selection { Present, All, Only }

    /// <summary>Lovász extension of the Jaccard loss for one row of errors and foreground flags.</summary>
    public static double Extension(double[] errors, bool[] foreground)
    {
        int n = errors.Length;
        var order = Enumerable.Range(0, n).OrderByDescending(i => errors[i]).ToArray();
        double loss = 0, previous = 0;
        for (int i = 1; i <= n; i++)
        {
            var mispredicted = order.Take(i).ToHashSet();
            int union = Enumerable.Range(0, n).Count(j => foreground[j] || mispredicted.Contains(j));
            double jaccard = union == 0 ? 0 : (double)mispredicted.Count / union;
            loss += errors[order[i - 1]] * (jaccard - previous);
            previous = jaccard;
        }
        return loss;
    }

    /// <summary>Lovász-Softmax of probas[b][c][p] with labels[b][p].</summary>
    public static double Softmax(double[][][] probas, long[][] labels, Selection selection, long[]? only, bool perImage, long? ignore)
    {
        int batch = probas.Length, classes = probas[0].Length;
        var classIds = selection == Selection.Only ? only! : Enumerable.Range(0, classes).Select(c => (long)c).ToArray();
        var images = perImage ? Enumerable.Range(0, batch).Select(b => new[] { b }).ToArray() : [Enumerable.Range(0, batch).ToArray()];
        var imageLosses = new List<double>();
        foreach (var set in images)
        {
            var pixels = set.SelectMany(b => Enumerable.Range(0, labels[b].Length).Select(p => (b, p)))
                            .Where(bp => ignore is null || labels[bp.b][bp.p] != ignore).ToArray();
            var classLosses = new List<double>();
            foreach (var c in classIds)
            {
                var fg = pixels.Select(bp => labels[bp.b][bp.p] == c).ToArray();
                if (pixels.Length == 0 || (selection == Selection.Present && !fg.Any(f => f))) continue;
                var errors = pixels.Select((bp, i) => Math.Abs((fg[i] ? 1.0 : 0.0) - probas[bp.b][(int)c][bp.p])).ToArray();
                classLosses.Add(Extension(errors, fg));
            }
            if (classLosses.Count > 0) imageLosses.Add(classLosses.Average());
        }
        return imageLosses.Count == 0 ? 0 : imageLosses.Average();
    }

    /// <summary>Lovász hinge of scores[b][p] with labels[b][p] in {0,1}.</summary>
    public static double Hinge(double[][] scores, long[][] labels, bool perImage, long? ignore)
    {
        var sets = perImage ? Enumerable.Range(0, scores.Length).Select(b => new[] { b }).ToArray() : [Enumerable.Range(0, scores.Length).ToArray()];
        var losses = new List<double>();
        foreach (var set in sets)
        {
            var pixels = set.SelectMany(b => Enumerable.Range(0, labels[b].Length).Select(p => (b, p)))
                            .Where(bp => ignore is null || labels[bp.b][bp.p] != ignore).ToArray();
            if (pixels.Length == 0) continue;
            var fg = pixels.Select(bp => labels[bp.b][bp.p] == 1).ToArray();
            var errors = pixels.Select((bp, i) => 1 - scores[bp.b][bp.p] * (fg[i] ? 1 : -1)).ToArray();
            // Sort by the raw errors, weight their positive parts (the reference's relu after sorting).
            int n = errors.Length;
            var order = Enumerable.Range(0, n).OrderByDescending(i => errors[i]).ToArray();
            double loss = 0, previous = 0;
            for (int i = 1; i <= n; i++)
            {
                var mispredicted = order.Take(i).ToHashSet();
                int union = Enumerable.Range(0, n).Count(j => fg[j] || mispredicted.Contains(j));
                double jaccard = (double)mispredicted.Count / union;
                loss += Math.Max(0, errors[order[i - 1]]) * (jaccard - previous);
                previous = jaccard;
            }
            losses.Add(loss);
        }
        return losses.Count == 0 ? 0 : losses.Average();
    }
}
