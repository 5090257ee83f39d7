using Seg.Core.Losses;
using Seg.Core.Losses.MetricLosses;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Tests.Losses;

/// <summary>Boundary label smoothing against a hand-worked map and a window-by-window brute force.</summary>
public class SoftLabelsTests
{
    public SoftLabelsTests() => TensorData.Init();

    /// <summary>Plain loops: a labelled pixel is on a boundary when its k×k window (clipped at the border) holds
    /// another class and no ignored pixel; it gets (1 − ε)·onehot + ε/C, other labelled pixels the one-hot,
    /// ignored pixels zeros.</summary>
    static double[] Oracle(long[,,] labels, int classes, double epsilon, int kernel, long ignore)
    {
        int batch = labels.GetLength(0), h = labels.GetLength(1), w = labels.GetLength(2), r = kernel / 2;
        var result = new double[batch * classes * h * w];
        for (int b = 0; b < batch; b++)
            for (int i = 0; i < h; i++)
                for (int j = 0; j < w; j++)
                {
                    long label = labels[b, i, j];
                    if (label == ignore) continue;
                    bool other = false, ignoredNear = false;
                    for (int di = -r; di <= r; di++)
                        for (int dj = -r; dj <= r; dj++)
                        {
                            int y = i + di, x = j + dj;
                            if (y < 0 || y >= h || x < 0 || x >= w) continue;
                            ignoredNear |= labels[b, y, x] == ignore;
                            other |= labels[b, y, x] != ignore && labels[b, y, x] != label;
                        }
                    bool boundary = other && !ignoredNear;
                    for (int c = 0; c < classes; c++)
                    {
                        double oneHot = c == label ? 1 : 0;
                        result[((b * classes + c) * h + i) * w + j] = boundary ? (1 - epsilon) * oneHot + epsilon / classes : oneHot;
                    }
                }
        return result;
    }

    static Tensor ToTensor(long[,,] labels) =>
        tensor(labels.Cast<long>().ToArray()).reshape(labels.GetLength(0), labels.GetLength(1), labels.GetLength(2));

    [Fact]
    public void HandWorkedMap()
    {
        // One image 1×4: [0 0 1 1], C = 2, ε = 0.5, k = 3. Pixels 1 and 2 see the other class: 0.75/0.25.
        var soft = SoftLabels.BoundarySmoothing(tensor(new long[] { 0, 0, 1, 1 }).view(1, 1, 4), 2);
        Assert.Equal(ScalarType.Float32, soft.dtype);
        Assert.Equal([1L, 2, 1, 4], soft.shape);
        Assert.Equal([1.0, 0.75, 0.25, 0, 0, 0.25, 0.75, 1], TensorData.Values(soft));
    }

    [Theory]
    [InlineData(3, 0.5, 0.0)]
    [InlineData(5, 0.3, 0.1)]
    [InlineData(3, 1.0, 0.2)]
    [InlineData(1, 0.5, 0.1)]
    public void MatchesBruteForce(int kernel, double epsilon, double ignoredShare)
    {
        var random = new Random(kernel * 10 + (int)(epsilon * 10));
        var labels = new long[2, 9, 11];
        // Blocks of one class with some noise, so that there are boundaries and interiors.
        for (int b = 0; b < 2; b++)
            for (int i = 0; i < 9; i++)
                for (int j = 0; j < 11; j++)
                    labels[b, i, j] = random.NextDouble() < ignoredShare ? 255 : random.NextDouble() < 0.1 ? random.Next(4) : (i / 3 + j / 4) % 4;
        var soft = SoftLabels.BoundarySmoothing(ToTensor(labels), 4, epsilon, kernel, ignoreIndex: 255);
        var expected = Oracle(labels, 4, epsilon, kernel, 255);
        var actual = TensorData.Values(soft);
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], 6);
    }

    [Fact]
    public void SoftLabelsAreProbabilitiesAndIgnoredPixelsAreZero()
    {
        var labels = tensor(new long[] { 0, 255, 1, 2, 2, 0 }).view(1, 2, 3);
        var soft = SoftLabels.BoundarySmoothing(labels, 3, epsilon: 0.4);
        var sums = TensorData.Values(soft.sum(1));
        Assert.Equal([1.0, 0.0, 1.0, 1.0, 1.0, 1.0], sums.Select(v => Math.Round(v, 6)));
        // The metric losses read the zero vector as ignored: the loss equals that of the hard labels' ignore.
        var logits = randn(1, 3, 2, 3, dtype: ScalarType.Float64);
        var oneHot = SoftLabels.BoundarySmoothing(labels, 3, epsilon: 0);
        Assert.Equal(MetricLoss.Jaccard(logits, labels, classes: ClassSelection.All).item<double>(),
                     MetricLoss.Jaccard(logits, oneHot).item<double>(), 6);
    }

    [Fact]
    public void BadInputsGiveClearErrors()
    {
        var labels = zeros(1, 4, 4, ScalarType.Int64);
        Assert.Throws<ArgumentOutOfRangeException>(() => SoftLabels.BoundarySmoothing(labels, 3, kernel: 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => SoftLabels.BoundarySmoothing(labels, 3, epsilon: 1.5));
        var e = Assert.Throws<ArgumentException>(() => SoftLabels.BoundarySmoothing(zeros(4, 4, ScalarType.Int64), 3));
        Assert.Contains("[4,4]", e.Message);
        e = Assert.Throws<ArgumentException>(() => SoftLabels.BoundarySmoothing(labels.fill_(3), 3));
        Assert.Contains("label 3 is outside the 3 classes", e.Message);
    }
}
