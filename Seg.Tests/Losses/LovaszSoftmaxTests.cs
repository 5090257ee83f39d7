using Seg.Core.Losses;
using Seg.Core.Losses.LovaszLosses;
using TorchSharp;
using static TorchSharp.torch;
using Sel = Seg.Tests.Losses.LovaszOracle.Selection;

namespace Seg.Tests.Losses;

public class LovaszSoftmaxTests
{
    public LovaszSoftmaxTests() => TensorData.Init();

    // kornia's tests of Berman's reference: three pixels, three classes.
    static Tensor KorniaProbas() => tensor(new[] { .6, .21, .12, .29, .68, .19, .11, .11, .69 }, dtype: ScalarType.Float64).reshape(1, 3, 1, 3);

    [Fact]
    public void PublishedVectorsLabels012()
    {
        using var scope = NewDisposeScope();
        var labels = tensor(new long[] { 0, 1, 2 }).reshape(1, 1, 3);
        Assert.Equal(1.03 / 3, Lovasz.Softmax(KorniaProbas(), labels, ClassSelection.All).item<double>(), 6);
        Assert.Equal(1.03 / 3, Lovasz.Softmax(KorniaProbas(), labels, ClassSelection.Present).item<double>(), 6);
    }

    [Fact]
    public void PublishedVectorsLabels000()
    {
        using var scope = NewDisposeScope();
        var labels = tensor(new long[] { 0, 0, 0 }).reshape(1, 1, 3);
        Assert.Equal(0.686667, Lovasz.Softmax(KorniaProbas(), labels, ClassSelection.All).item<double>(), 6);
        Assert.Equal(0.69, Lovasz.Softmax(KorniaProbas(), labels, ClassSelection.Present).item<double>(), 6);
        Assert.Equal(0.69, Lovasz.Softmax(KorniaProbas(), labels).item<double>(), 6); // default selection is Present
    }

    [Fact]
    public void LovaszGradOfSortedGroundTruth1010()
    {
        // Foreground probabilities chosen so that the descending errors are 0.9 (fg), 0.7 (bg), 0.5 (fg), 0.2 (bg):
        // d loss / d error is lovasz_grad([1,0,1,0]) = [1/2, 1/6, 1/3, 0]; d error / d p is −1 on fg, +1 on bg.
        using var scope = NewDisposeScope();
        var p = tensor(new[] { 0.1, 0.7, 0.5, 0.2 }, dtype: ScalarType.Float64).reshape(1, 2, 2).requires_grad_(true);
        var labels = tensor(new long[] { 1, 0, 1, 0 }).reshape(1, 2, 2);
        Lovasz.Softmax(p, labels, ClassSelection.All).backward();
        var grad = TensorData.Values(p.grad!);
        double[] expected = [-0.5, 1.0 / 6, -1.0 / 3, 0];
        for (int i = 0; i < 4; i++) Assert.Equal(expected[i], grad[i], 12);
    }

    [Theory]
    [InlineData(ScalarType.Float64, 0)]       // device-generic path
    [InlineData(ScalarType.Float32, 0)]       // CPU kernel, radix sort
    [InlineData(ScalarType.Float32, 4096)]    // CPU kernel, histogram: errors 0 and 1 fall in the end bins exactly
    public void HardOneHotPredictionsGiveOneMinusIoU(ScalarType dtype, int bins)
    {
        using var scope = NewDisposeScope();
        var random = new Random(7);
        const int classes = 4, pixels = 30;
        var truth = Enumerable.Range(0, pixels).Select(_ => (long)random.Next(classes)).ToArray();
        var predicted = Enumerable.Range(0, pixels).Select(_ => (long)random.Next(classes)).ToArray();
        var probas = nn.functional.one_hot(tensor(predicted), classes).to(dtype).t().reshape(1, classes, 5, 6);
        var labels = tensor(truth).reshape(1, 5, 6);
        var lossesOfPresent = new List<double>();
        for (int c = 0; c < classes; c++)
        {
            int inter = Enumerable.Range(0, pixels).Count(i => truth[i] == c && predicted[i] == c);
            int union = Enumerable.Range(0, pixels).Count(i => truth[i] == c || predicted[i] == c);
            if (truth.Contains(c)) lossesOfPresent.Add(1 - (double)inter / union);
        }
        Assert.Equal(lossesOfPresent.Average(), Lovasz.Softmax(probas, labels, bins: bins).to(ScalarType.Float64).item<double>(),
                     dtype == ScalarType.Float64 ? 12 : 6);
    }

    public static TheoryData<string, bool, bool> OracleCases()
    {
        var data = new TheoryData<string, bool, bool>();
        foreach (var selection in new[] { "present", "all", "only" })
            foreach (var perImage in new[] { false, true })
                foreach (var ignore in new[] { false, true })
                    data.Add(selection, perImage, ignore);
        return data;
    }

    [Theory]
    [MemberData(nameof(OracleCases))]
    public void MatchesBruteForceOracle(string selection, bool perImage, bool ignore)
    {
        var random = new Random(selection.Length * 31 + (perImage ? 7 : 0) + (ignore ? 3 : 0));
        for (int trial = 0; trial < 4; trial++)
        {
            using var scope = NewDisposeScope();
            const int batch = 3, classes = 4, width = 4, pixels = 12;
            var probas = TensorData.RandomProbas(random, batch, classes, pixels);
            // Labels use classes 0..2 only, so class 3 is absent and All differs from Present.
            var labels = TensorData.RandomLabels(random, batch, pixels, classes - 1, ignore ? 0.25 : 0);
            if (ignore && trial == 3) labels[1] = Enumerable.Repeat(255L, pixels).ToArray(); // one image all ignored
            var (sel, oracleSel, only) = selection switch
            {
                "present" => (ClassSelection.Present, Sel.Present, (long[]?)null),
                "all" => (ClassSelection.All, Sel.All, null),
                _ => (ClassSelection.Only(0, 3), Sel.Only, new long[] { 0, 3 }),
            };
            long? ignoreIndex = ignore ? 255 : null;
            double expected = LovaszOracle.Softmax(probas, labels, oracleSel, only, perImage, ignoreIndex);
            double actual = Lovasz.Softmax(TensorData.Probas(probas, width), TensorData.Labels(labels, width), sel, perImage, ignoreIndex).item<double>();
            Assert.Equal(expected, actual, 10);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void GradientMatchesFiniteDifferencesOfOracle(bool perImage)
    {
        // Logits → softmax → Lovász in float64; random continuous values have no ties, so the order is stable
        // under the small step and the loss is differentiable there.
        using var scope = NewDisposeScope();
        var random = new Random(perImage ? 11 : 12);
        const int batch = 2, classes = 3, width = 3, pixels = 6;
        var logits = Enumerable.Range(0, batch * classes * pixels).Select(_ => random.NextDouble() * 4 - 2).ToArray();
        var labels = TensorData.RandomLabels(random, batch, pixels, classes, 0.2);
        var x = tensor(logits, dtype: ScalarType.Float64).reshape(batch, classes, pixels / width, width).requires_grad_(true);
        var loss = new LovaszSoftmaxLoss(ClassSelection.All, perImage, ignoreIndex: 255).call(x, TensorData.Labels(labels, width));
        loss.backward();
        var grad = TensorData.Values(x.grad!);

        double Oracle(double[] z) => LovaszOracle.Softmax(Softmax(z, batch, classes, pixels), labels, Sel.All, null, perImage, 255);
        const double h = 1e-6;
        for (int i = 0; i < logits.Length; i++)
        {
            var plus = (double[])logits.Clone(); plus[i] += h;
            var minus = (double[])logits.Clone(); minus[i] -= h;
            Assert.Equal((Oracle(plus) - Oracle(minus)) / (2 * h), grad[i], 6);
        }
    }

    static double[][][] Softmax(double[] z, int batch, int classes, int pixels)
    {
        var p = new double[batch][][];
        for (int b = 0; b < batch; b++)
        {
            p[b] = new double[classes][];
            for (int c = 0; c < classes; c++) p[b][c] = new double[pixels];
            for (int i = 0; i < pixels; i++)
            {
                double sum = 0;
                for (int c = 0; c < classes; c++) sum += Math.Exp(z[(b * classes + c) * pixels + i]);
                for (int c = 0; c < classes; c++) p[b][c][i] = Math.Exp(z[(b * classes + c) * pixels + i]) / sum;
            }
        }
        return p;
    }

    [Theory]
    [InlineData(false, 0)]
    [InlineData(true, 0)]
    [InlineData(false, 16)]
    [InlineData(true, 16)]
    public void NoValidPixelsGivesZeroWithZeroGradient(bool perImage, int bins)
    {
        using var scope = NewDisposeScope();
        var p = rand(2, 3, 4, 4, dtype: ScalarType.Float64).requires_grad_(true);
        var labels = full(2, 4, 4, 255L);
        foreach (var selection in new[] { ClassSelection.Present, ClassSelection.All, ClassSelection.Only(1) })
        {
            p.grad?.zero_();
            var loss = Lovasz.Softmax(p, labels, selection, perImage, ignoreIndex: 255, bins: bins);
            Assert.Empty(loss.shape);
            Assert.Equal(0.0, loss.item<double>());
            loss.backward();
            Assert.All(TensorData.Values(p.grad!), g => Assert.Equal(0.0, g));
        }
    }

    [Fact]
    public void EmptyImageGivesZeroScalar()
    {
        using var scope = NewDisposeScope();
        var loss = Lovasz.Softmax(rand(2, 3, 0, 4), zeros(2, 0, 4, dtype: ScalarType.Int64));
        Assert.Empty(loss.shape);
        Assert.Equal(0.0f, loss.item<float>());
    }

    [Fact]
    public void IgnoredImageIsLeftOutOfPerImageMean()
    {
        using var scope = NewDisposeScope();
        var p = rand(2, 3, 4, 4, dtype: ScalarType.Float64).softmax(1);
        var labels = randint(0, 3, [2, 4, 4]);
        var second = labels.clone();
        second[1] = full(4, 4, 255L);
        double both = Lovasz.Softmax(p, second, perImage: true, ignoreIndex: 255).item<double>();
        double firstAlone = Lovasz.Softmax(p[0].unsqueeze(0), labels[0].unsqueeze(0), perImage: true, ignoreIndex: 255).item<double>();
        Assert.Equal(firstAlone, both, 12);
    }

    [Fact]
    public void OneValidPixelGivesItsError()
    {
        using var scope = NewDisposeScope();
        var p = tensor(new[] { 0.2, 0.5, 0.3, 0.1 }, dtype: ScalarType.Float64).reshape(1, 2, 1, 2);
        var labels = tensor(new long[] { 1, 255 }).reshape(1, 1, 2);
        // Only class 1 is present; its one pixel has error 1 − 0.3; the Jaccard weight of a lone foreground pixel is 1.
        Assert.Equal(0.7, Lovasz.Softmax(p, labels, ignoreIndex: 255).item<double>(), 12);
        // All: class 0 is absent and contributes its largest (only) error 0.2.
        Assert.Equal((0.7 + 0.2) / 2, Lovasz.Softmax(p, labels, ClassSelection.All, ignoreIndex: 255).item<double>(), 12);
    }

    [Theory]
    [InlineData(ScalarType.Float16)]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Float64)]
    [InlineData(ScalarType.Float32)]
    public void OtherFloatTypesWork(ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var random = new Random(5);
        var probas = TensorData.RandomProbas(random, 2, 3, 16);
        var labels = TensorData.Labels(TensorData.RandomLabels(random, 2, 16, 3, 0.1), 4);
        var expected = LovaszOracle.Softmax(probas, labels.data<long>().ToArray().Chunk(16).ToArray(), Sel.Present, null, false, 255);
        var p = TensorData.Probas(probas, 4, dtype).requires_grad_(true);
        var loss = Lovasz.Softmax(p, labels, ignoreIndex: 255);
        Assert.Equal(dtype, loss.dtype);
        double tolerance = dtype is ScalarType.Float16 or ScalarType.BFloat16 ? 2e-2 : 1e-6;
        Assert.InRange(loss.to(ScalarType.Float64).item<double>(), expected - tolerance, expected + tolerance);
        loss.backward();
        Assert.Equal(dtype, p.grad!.dtype);
        Assert.All(TensorData.Values(p.grad!), g => Assert.True(double.IsFinite(g)));
        Assert.Contains(TensorData.Values(p.grad!), g => g != 0);
    }

    [Theory]
    [InlineData(4)]
    [InlineData(16)]
    [InlineData(256)]
    [InlineData(4096)]
    public void HistogramIsWithinOneOverBinsOfExact(int bins)
    {
        var random = new Random(bins);
        foreach (var perImage in new[] { false, true })
            foreach (var selection in new[] { ClassSelection.Present, ClassSelection.All })
            {
                using var scope = NewDisposeScope();
                var p = TensorData.Probas(TensorData.RandomProbas(random, 2, 5, 400), 20);
                var labels = TensorData.Labels(TensorData.RandomLabels(random, 2, 400, 4, 0.05), 20);
                // Independent reference: the brute-force oracle is too slow at this size; the exact mode is checked
                // against it above, and bins = 1 below shows the bound is not vacuous.
                double exact = Lovasz.Softmax(p, labels, selection, perImage, 255).item<double>();
                double approx = Lovasz.Softmax(p, labels, selection, perImage, 255, bins).item<double>();
                Assert.InRange(Math.Abs(approx - exact), 0, 1.0 / bins);
            }
    }

    [Fact]
    public void HistogramMatchesOracleWithinBound()
    {
        var random = new Random(3);
        var probas = TensorData.RandomProbas(random, 2, 3, 12);
        var labels = TensorData.RandomLabels(random, 2, 12, 3, 0.2);
        double expected = LovaszOracle.Softmax(probas, labels, Sel.Present, null, true, 255);
        foreach (var bins in new[] { 1, 2, 8, 1000 })
        {
            using var scope = NewDisposeScope();
            double approx = Lovasz.Softmax(TensorData.Probas(probas, 4), TensorData.Labels(labels, 4), perImage: true, ignoreIndex: 255, bins: bins).item<double>();
            Assert.InRange(Math.Abs(approx - expected), 0, 1.0 / bins);
        }
    }

    [Fact]
    public void HistogramWithManyBinsGivesExactGradientWithoutTies()
    {
        // With bins so fine that every pixel has its own bin, the per-bin weights are the exact lovasz_grad.
        using var scope = NewDisposeScope();
        var p = tensor(new[] { 0.1, 0.7, 0.5, 0.2 }, dtype: ScalarType.Float64).reshape(1, 2, 2).requires_grad_(true);
        var labels = tensor(new long[] { 1, 0, 1, 0 }).reshape(1, 2, 2);
        Lovasz.Softmax(p, labels, ClassSelection.All, bins: 1000).backward();
        var grad = TensorData.Values(p.grad!);
        double[] expected = [-0.5, 1.0 / 6, -1.0 / 3, 0];
        for (int i = 0; i < 4; i++) Assert.Equal(expected[i], grad[i], 12);
    }

    [Fact]
    public void BinaryProbabilitiesAreForegroundOfClassOne()
    {
        var random = new Random(9);
        var fgProb = Enumerable.Range(0, 2).Select(_ => Enumerable.Range(0, 9).Select(_ => random.NextDouble()).ToArray()).ToArray();
        var labels = TensorData.RandomLabels(random, 2, 9, 2, 0.2);
        var twoClass = fgProb.Select(img => new[] { img.Select(v => 1 - v).ToArray(), img }).ToArray();
        using var scope = NewDisposeScope();
        var p = tensor(fgProb.SelectMany(x => x).ToArray(), dtype: ScalarType.Float64).reshape(2, 3, 3);
        var y = TensorData.Labels(labels, 3);
        Assert.Equal(LovaszOracle.Softmax(twoClass, labels, Sel.Only, [1], true, 255),
                     Lovasz.Softmax(p, y, ClassSelection.All, perImage: true, ignoreIndex: 255).item<double>(), 10);
        Assert.Equal(LovaszOracle.Softmax(twoClass, labels, Sel.Only, [0, 1], false, 255),
                     Lovasz.Softmax(p, y, ClassSelection.Only(0, 1), ignoreIndex: 255).item<double>(), 10);
        // Present: no foreground anywhere gives 0.
        Assert.Equal(0.0, Lovasz.Softmax(p, zeros_like(y)).item<double>());
    }

    [Fact]
    public void ShapeMismatchNamesBothShapes()
    {
        using var scope = NewDisposeScope();
        var e = Assert.Throws<ArgumentException>(() => Lovasz.Softmax(rand(2, 3, 4, 4), zeros(2, 5, 5, dtype: ScalarType.Int64)));
        Assert.Contains("labels [2,5,5] do not match probas [2,3,4,4]", e.Message);
    }

    [Fact]
    public void BadInputsGiveClearErrors()
    {
        using var scope = NewDisposeScope();
        var p = rand(1, 3, 2, 2);
        var y = zeros(1, 2, 2, dtype: ScalarType.Int64);
        Assert.Contains("integer class ids", Assert.Throws<ArgumentException>(() => Lovasz.Softmax(p, y.to(ScalarType.Float32))).Message);
        Assert.Contains("names class 5", Assert.Throws<ArgumentException>(() => Lovasz.Softmax(p, y, ClassSelection.Only(5))).Message);
        y[0, 0, 0] = tensor(7L);
        Assert.Contains("hold 7", Assert.Throws<ArgumentException>(() => Lovasz.Softmax(p, y)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => Lovasz.Softmax(p, zeros_like(y), bins: -1));
    }

    [Fact]
    public void ClassSelectionDefaultIsPresent()
    {
        Assert.Equal(ClassSelection.Present, default(ClassSelection));
        Assert.True(default(ClassSelection).IsPresent);
        Assert.NotEqual(ClassSelection.All, ClassSelection.Present);
        Assert.Equal(ClassSelection.Only(1, 2), ClassSelection.Only(1, 2));
        Assert.NotEqual(ClassSelection.Only(1, 2), ClassSelection.Only(2, 1));
        Assert.Throws<ArgumentException>(() => ClassSelection.Only());
        Assert.Throws<ArgumentException>(() => ClassSelection.Only(1, 1));
        Assert.Throws<ArgumentException>(() => ClassSelection.Only(-1));
    }

    [Fact]
    public void ModuleTakesFlatLogitsLikeImages()
    {
        using var scope = NewDisposeScope();
        var logits = randn(10, 4, dtype: ScalarType.Float64);
        var labels = randint(0, 4, [10]);
        var loss = new LovaszSoftmaxLoss(ignoreIndex: null);
        double flat = loss.call(logits, labels).item<double>();
        double image = loss.call(logits.t().reshape(1, 4, 2, 5), labels.reshape(1, 2, 5)).item<double>();
        Assert.Equal(image, flat, 12);
        Assert.Contains("labels [9] do not match logits [10,4]",
            Assert.Throws<ArgumentException>(() => loss.call(logits, labels[..9])).Message);
    }

    [Fact]
    public void LogitsForProbabilitiesAreRefusedOnTheCpu()
    {
        var logits = tensor(new[] { 2.5f, -1.0f, 0.3f, 0.1f }, [1, 2, 1, 2]);   // one value above 1, one below 0
        var labels = zeros(1, 1, 2, dtype: ScalarType.Int64);
        var e = Assert.Throws<ArgumentException>(() => Lovasz.Softmax(logits, labels));
        Assert.Equal("probas", e.ParamName);
        Assert.Contains("min -1, max 2.5", e.Message);
        Assert.Contains("not logits", e.Message);
        // Probabilities, and the module on the same logits, pass.
        Assert.True(double.IsFinite(Lovasz.Softmax(logits.softmax(1), labels).item<float>()));
        Assert.True(double.IsFinite(new LovaszSoftmaxLoss().call(logits, labels).item<float>()));
    }
}
