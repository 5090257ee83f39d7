using Seg.Core;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Tests.SoftmaxFamily;

/// <summary>
/// Plain-double reference computations for the softmax-family tests, written from the papers' formulas
/// (acos-based where the code under test uses other identities), plus tensor conversions.
/// </summary>
internal static class Oracle
{
    internal static Tensor T(double[][] rows)
    {
        SegRuntime.Initialize();
        var flat = rows.SelectMany(r => r).ToArray();
        return tensor(flat, [rows.Length, rows[0].Length], dtype: ScalarType.Float64);
    }

    internal static Tensor Labels(params long[] labels) => tensor(labels, dtype: ScalarType.Int64);

    internal static double[] Values(Tensor t) => t.to_type(ScalarType.Float64).contiguous().data<double>().ToArray();

    internal static double[][] Rows(Tensor t)
    {
        var v = Values(t);
        var cols = (int)t.shape[1];
        return Enumerable.Range(0, (int)t.shape[0]).Select(i => v.Skip(i * cols).Take(cols).ToArray()).ToArray();
    }

    internal static double Dot(double[] a, double[] b) => a.Zip(b, (x, y) => x * y).Sum();

    internal static double Norm(double[] a) => Math.Sqrt(Dot(a, a));

    internal static double Cos(double[] a, double[] b) => Dot(a, b) / (Norm(a) * Norm(b));

    /// <summary>−log softmax(logits)[y].</summary>
    internal static double CrossEntropy(double[] logits, long y)
    {
        var max = logits.Max();
        var logSum = max + Math.Log(logits.Sum(l => Math.Exp(l - max)));
        return logSum - logits[y];
    }

    /// <summary>cos(θ + m), or the insightface fallback cos θ − m·sin m past π, or easy margin.</summary>
    internal static double ArcFaceCos(double cos, double m, bool easy)
    {
        var theta = Math.Acos(cos);
        if (easy) return cos > 0 ? Math.Cos(theta + m) : cos;
        return theta + m <= Math.PI ? Math.Cos(theta + m) : cos - m * Math.Sin(m);
    }

    /// <summary>ψ(θ) = (−1)^k cos(mθ) − 2k, k = ⌊mθ/π⌋ (clamped to m − 1 at θ = π).</summary>
    internal static double Psi(double theta, int m)
    {
        var k = Math.Min(m - 1, (int)Math.Floor(m * theta / Math.PI));
        return (k % 2 == 0 ? 1 : -1) * Math.Cos(m * theta) - 2 * k;
    }

    internal static void Close(double expected, double actual, double tol = 1e-9)
        => Assert.True(Math.Abs(expected - actual) <= tol * (1 + Math.Abs(expected)),
            $"expected {expected:R}, got {actual:R}");

    internal static void Close(double[] expected, double[] actual, double tol = 1e-9)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tol * (1 + Math.Abs(expected[i])),
                $"element {i}: expected {expected[i]:R}, got {actual[i]:R}");
    }
}
