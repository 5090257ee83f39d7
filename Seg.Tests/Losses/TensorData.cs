using Seg.Core;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Tests.Losses;

/// <summary>Builds small random cases as plain arrays and as tensors, and reads tensors back.</summary>
internal static class TensorData
{
    public static void Init() => SegRuntime.Initialize();

    /// <summary>Random probabilities [B][C][P] (each pixel's column sums to 1).</summary>
    public static double[][][] RandomProbas(Random random, int batch, int classes, int pixels)
    {
        var result = new double[batch][][];
        for (int b = 0; b < batch; b++)
        {
            result[b] = new double[classes][];
            for (int c = 0; c < classes; c++) result[b][c] = new double[pixels];
            for (int p = 0; p < pixels; p++)
            {
                var raw = Enumerable.Range(0, classes).Select(_ => random.NextDouble() + 0.01).ToArray();
                double sum = raw.Sum();
                for (int c = 0; c < classes; c++) result[b][c][p] = raw[c] / sum;
            }
        }
        return result;
    }

    public static long[][] RandomLabels(Random random, int batch, int pixels, int classes, double ignoredShare = 0, long ignore = 255)
        => Enumerable.Range(0, batch).Select(_ => Enumerable.Range(0, pixels)
            .Select(_ => random.NextDouble() < ignoredShare ? ignore : random.Next(classes)).Select(v => (long)v).ToArray()).ToArray();

    /// <summary>[B][C][P] as a [B,C,H,W] tensor with W = 1... P split as H×W with <paramref name="width"/>.</summary>
    public static Tensor Probas(double[][][] p, int width, ScalarType dtype = ScalarType.Float64)
    {
        int b = p.Length, c = p[0].Length, n = p[0][0].Length;
        var flat = p.SelectMany(x => x.SelectMany(y => y)).ToArray();
        return tensor(flat, dtype: ScalarType.Float64).reshape(b, c, n / width, width).to(dtype);
    }

    public static Tensor Labels(long[][] labels, int width)
    {
        int b = labels.Length, n = labels[0].Length;
        return tensor(labels.SelectMany(x => x).ToArray()).reshape(b, n / width, width);
    }

    public static double[] Values(Tensor t) => t.detach().to(ScalarType.Float64).cpu().data<double>().ToArray();

    /// <summary>Same shape and the same float bit patterns everywhere (so +0 and −0 differ, and NaN equals NaN).</summary>
    public static void AssertBitwiseEqual(Tensor expected, Tensor actual)
    {
        Assert.Equal(expected.shape, actual.shape);
        Assert.Equal(expected.dtype, actual.dtype);
        var e = expected.detach().cpu().to(ScalarType.Float64).data<double>().ToArray();
        var a = actual.detach().cpu().to(ScalarType.Float64).data<double>().ToArray();
        for (int i = 0; i < e.Length; i++)
            if (BitConverter.DoubleToInt64Bits(e[i]) != BitConverter.DoubleToInt64Bits(a[i]))
                Assert.Fail($"element {i} of [{string.Join(",", expected.shape)}]: expected {e[i]:R}, got {a[i]:R}");
    }
}
