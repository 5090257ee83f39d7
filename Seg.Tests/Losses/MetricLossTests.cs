using Seg.Core.Losses;
using Seg.Core.Losses.MetricLosses;
using Seg.Tests.SoftmaxFamily;
using TorchSharp;
using static TorchSharp.torch;
using O = Seg.Tests.Losses.MetricLossOracle.Options;

namespace Seg.Tests.Losses;

/// <summary>
/// Jaccard metric, Dice semimetric and Tversky losses against hand-worked values, the plain-double oracle
/// (<see cref="MetricLossOracle"/>), brute-force IoU and finite differences.
/// </summary>
public class MetricLossTests
{
    public MetricLossTests() => TensorData.Init();

    const int Width = 4;

    static double[][][] RandomLogits(Random random, int batch, int classes, int pixels, double scale = 3) =>
        Enumerable.Range(0, batch).Select(_ => Enumerable.Range(0, classes)
            .Select(_ => Enumerable.Range(0, pixels).Select(_ => (random.NextDouble() * 2 - 1) * scale).ToArray()).ToArray()).ToArray();

    static Tensor Logits(double[][][] logits) => TensorData.Probas(logits, Width);

    static double Value(Tensor t) => t.to(ScalarType.Float64).item<double>();

    static Tensor Jml(Tensor logits, Tensor labels, O o) =>
        MetricLoss.Tversky(logits, labels, o.Alpha, o.Beta, o.Gamma, o.PerDataset, o.PerImage, o.PerClass, o.Smooth, o.LogLoss,
            o.Weights, o.Classes switch { "present" => ClassSelection.Present, "all" => ClassSelection.All, _ => ClassSelection.Only(o.Only!) },
            o.Threshold, ignoreIndex: 255);

    // ---- hand-worked ----
    // Two images of two pixels, two classes, all logits 0 so p = ½ everywhere; labels [0,0] and [0,1]; s = 1.
    // Jaccard, per image:  image 0, class 0: tp 1, fp 0, fn 1, T = 2/3, loss 1/3;  class 1 (absent): tp 0, fp 1, T = 1/2.
    //                      image 1, either class: tp ½, fp ½, fn ½, T = 1.5/2.5, loss 2/5.
    // Per dataset: class 0: tp 3/2, fp 1/2, fn 3/2, T = 5/9, loss 4/9; class 1: tp 1/2, fp 3/2, fn 1/2, T = 3/7, loss 4/7.
    static (Tensor Logits, Tensor Labels) HandCase() =>
        (zeros(2, 2, 1, 2, ScalarType.Float64), tensor(new long[] { 0, 0, 0, 1 }).view(2, 1, 2));

    [Fact]
    public void PerDatasetIsHandWorked()
    {
        var (x, y) = HandCase();
        Assert.Equal((4.0 / 9 + 4.0 / 7) / 2, Value(MetricLoss.Jaccard(x, y)), 12);            // 32/63
    }

    [Fact]
    public void PerImageIsHandWorked()
    {
        var (x, y) = HandCase();
        // Present: image 0 has class 0 only (1/3), image 1 both (2/5 each).
        Assert.Equal((1.0 / 3 + 2.0 / 5) / 2, Value(MetricLoss.Jaccard(x, y, perDataset: 0, perImage: 1)), 12);
        // All: image 0 also counts its absent class 1 (1/2).
        Assert.Equal(((1.0 / 3 + 1.0 / 2) / 2 + 2.0 / 5) / 2,
            Value(MetricLoss.Jaccard(x, y, perDataset: 0, perImage: 1, classes: ClassSelection.All)), 12);
    }

    [Fact]
    public void PerClassIsHandWorked()
    {
        var (x, y) = HandCase();
        // Class 0 is present in both images (1/3, 2/5), class 1 in image 1 only (2/5).
        Assert.Equal(((1.0 / 3 + 2.0 / 5) / 2 + 2.0 / 5) / 2, Value(MetricLoss.Jaccard(x, y, perDataset: 0, perClass: 1)), 12);
    }

    [Fact]
    public void AggregationWeightsAdd()
    {
        var (x, y) = HandCase();
        double expected = 0.5 * 32.0 / 63 + 2 * 11.0 / 30 + 0.25 * 23.0 / 60;
        Assert.Equal(expected, Value(MetricLoss.Jaccard(x, y, perDataset: 0.5, perImage: 2, perClass: 0.25)), 12);
    }

    [Fact]
    public void DiceAndTverskyAreHandWorked()
    {
        var (x, y) = HandCase();
        // Dice (α = β = ½), image 1, class 0: T = (½ + 1)/(½ + ¼ + ¼ + 1) = 3/4. Image 0, class 0: T = 2/(1 + ½ + 1) = 4/5.
        Assert.Equal((1.0 / 5 + 1.0 / 4) / 2, Value(MetricLoss.Dice(x, y, perDataset: 0, perImage: 1)), 12);
        // Tversky α = 0.2 (FP), β = 0.8 (FN): image 0, class 0: T = 2/(1 + 0.8 + 1) = 5/7; image 1, class 0 and 1:
        // T = 1.5/(½ + 0.1 + 0.4 + 1) = 3/4.
        Assert.Equal((2.0 / 7 + 1.0 / 4) / 2, Value(MetricLoss.Tversky(x, y, alpha: 0.2, beta: 0.8, perDataset: 0, perImage: 1)), 12);
        // γ = 2 squares each class's loss; log loss takes −log T.
        Assert.Equal((1.0 / 9 + 4.0 / 25) / 2, Value(MetricLoss.Jaccard(x, y, perDataset: 0, perImage: 1, gamma: 2)), 12);
        Assert.Equal((-Math.Log(2.0 / 3) - Math.Log(3.0 / 5)) / 2, Value(MetricLoss.Jaccard(x, y, perDataset: 0, perImage: 1, logLoss: true)), 12);
        // Class weights multiply each class's loss before the mean over active classes (as the official code does).
        Assert.Equal((2 * 4.0 / 9 + 3 * 4.0 / 7) / 2, Value(MetricLoss.Jaccard(x, y, classWeights: [2, 3])), 12);
    }

    // ---- the oracle ----

    public static TheoryData<string> OracleSettings() => new()
    {
        "jaccard dataset", "dice dataset", "tversky dataset", "jaccard image", "jaccard class", "jaccard all three",
        "dice all-classes image", "gamma log weights", "only", "tversky class gamma",
    };

    static O Settings(string name) => name switch
    {
        "jaccard dataset" => new O(),
        "dice dataset" => new O { Alpha = 0.5, Beta = 0.5 },
        "tversky dataset" => new O { Alpha = 0.3, Beta = 0.7 },
        "jaccard image" => new O { PerDataset = 0, PerImage = 1 },
        "jaccard class" => new O { PerDataset = 0, PerClass = 1 },
        "jaccard all three" => new O { PerDataset = 0.5, PerImage = 0.3, PerClass = 0.2, Smooth = 0.1 },
        "dice all-classes image" => new O { Alpha = 0.5, Beta = 0.5, PerDataset = 0, PerImage = 1, Classes = "all" },
        "gamma log weights" => new O { Gamma = 2.5, LogLoss = true, Weights = [0.5, 2, 1, 0], PerImage = 1 },
        "only" => new O { Classes = "only", Only = [1, 3], PerClass = 1 },
        "tversky class gamma" => new O { Alpha = 0.7, Beta = 0.3, Gamma = 1.5, PerDataset = 0, PerClass = 1, Smooth = 0.5 },
        _ => throw new ArgumentException(name),
    };

    [Theory]
    [MemberData(nameof(OracleSettings))]
    public void HardLabelsMatchOracle(string setting)
    {
        var o = Settings(setting);
        for (int seed = 0; seed < 4; seed++)
        {
            var random = new Random(seed);
            var logits = RandomLogits(random, 3, 4, 12);
            // Few classes per image so that Present and All differ; some pixels ignored.
            var labels = TensorData.RandomLabels(random, 3, 12, seed % 2 == 0 ? 2 : 4, ignoredShare: 0.2);
            var (y, valid) = MetricLossOracle.OneHot(labels, 4, 255);
            double expected = MetricLossOracle.Loss(logits, y, valid, o);
            Assert.Equal(expected, Value(Jml(Logits(logits), TensorData.Labels(labels, Width), o)), 12);
        }
    }

    [Theory]
    [MemberData(nameof(OracleSettings))]
    public void SoftLabelsMatchOracle(string setting)
    {
        var o = Settings(setting) with { Classes = Settings(setting).Classes == "only" ? "only" : "all" };
        var random = new Random(7);
        var logits = RandomLogits(random, 3, 4, 12);
        // A teacher's probabilities as soft labels; the first pixel of image 1 unlabelled (all-zero vector).
        var teacher = MetricLossOracle.Softmax(RandomLogits(random, 3, 4, 12, scale: 4));
        for (int c = 0; c < 4; c++) teacher[1][c][0] = 0;
        double expected = MetricLossOracle.Loss(logits, teacher, MetricLossOracle.ValidOfSoft(teacher), o);
        Assert.Equal(expected, Value(Jml(Logits(logits), TensorData.Probas(teacher, Width), o)), 12);
    }

    [Fact]
    public void SoftLabelsDefaultToAllClassesAndHardToPresent()
    {
        var random = new Random(3);
        var logits = RandomLogits(random, 2, 3, 8);
        var labels = TensorData.RandomLabels(random, 2, 8, 2);                       // class 2 absent
        var (y, valid) = MetricLossOracle.OneHot(labels, 3, 255);
        var x = Logits(logits);
        Assert.Equal(MetricLossOracle.Loss(logits, y, valid, new O { PerImage = 1 }),
            Value(MetricLoss.Jaccard(x, TensorData.Labels(labels, Width), perImage: 1)), 12);
        // The same one-hot labels given as soft labels average over all classes.
        Assert.Equal(MetricLossOracle.Loss(logits, y, valid, new O { PerImage = 1, Classes = "all" }),
            Value(MetricLoss.Jaccard(x, TensorData.Probas(y, Width), perImage: 1)), 12);
    }

    [Fact]
    public void PresentUsesTheThresholdOnSoftLabels()
    {
        // Class 2 holds at most 0.005 of any pixel: below the default threshold 0.01, above 0.001.
        var random = new Random(5);
        var logits = RandomLogits(random, 2, 3, 8);
        var soft = Enumerable.Range(0, 2).Select(_ => new[]
        {
            Enumerable.Range(0, 8).Select(j => j % 2 == 0 ? 0.995 : 0.3).ToArray(),
            Enumerable.Range(0, 8).Select(j => j % 2 == 0 ? 0.0 : 0.695).ToArray(),
            Enumerable.Range(0, 8).Select(_ => 0.005).ToArray(),
        }).ToArray();
        var valid = MetricLossOracle.ValidOfSoft(soft);
        foreach (var threshold in new[] { 0.01, 0.001 })
        {
            var o = new O { Threshold = threshold };
            double expected = MetricLossOracle.Loss(logits, soft, valid, o);
            double twoClasses = MetricLossOracle.Loss(logits, soft, valid, o with { Classes = "only", Only = [0, 1] });
            double actual = Value(MetricLoss.Jaccard(Logits(logits), TensorData.Probas(soft, Width), classes: ClassSelection.Present, threshold: threshold));
            Assert.Equal(expected, actual, 12);
            Assert.Equal(threshold == 0.01, Math.Abs(actual - twoClasses) < 1e-12);
        }
    }

    // ---- what the papers promise ----

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public void OnHardLabelsItIsOneMinusSoftJaccard(int seed)
    {
        // Soft Jaccard in its usual form: per class over the batch, 1 − (Σ p·y + s)/(Σ p + Σ y − Σ p·y + s),
        // averaged over the classes present in the labels.
        var random = new Random(seed);
        var logits = RandomLogits(random, 2, 3, 8);
        var labels = TensorData.RandomLabels(random, 2, 8, 3, ignoredShare: 0.25);
        var p = MetricLossOracle.Softmax(logits);
        var losses = new List<double>();
        for (int c = 0; c < 3; c++)
        {
            double inter = 0, sumP = 0, sumY = 0;
            for (int b = 0; b < 2; b++)
                for (int j = 0; j < 8; j++)
                {
                    if (labels[b][j] == 255) continue;
                    double yv = labels[b][j] == c ? 1 : 0;
                    inter += p[b][c][j] * yv;
                    sumP += p[b][c][j];
                    sumY += yv;
                }
            if (sumY > 0) losses.Add(1 - (inter + 1) / (sumP + sumY - inter + 1));
        }
        Assert.Equal(losses.Average(), Value(new JaccardMetricLoss().call(Logits(logits), TensorData.Labels(labels, Width))), 12);
    }

    [Fact]
    public void SoftLabelLossIsZeroExactlyWhenPredictionEqualsLabel()
    {
        var random = new Random(11);
        var z = RandomLogits(random, 2, 4, 8);
        var label = TensorData.Probas(MetricLossOracle.Softmax(z), Width);
        var modules = new nn.Module<Tensor, Tensor, Tensor>[]
        {
            new JaccardMetricLoss(perImage: 1, perClass: 1), new DiceMetricLoss(perImage: 1, perClass: 1),
            new TverskyLoss(alpha: 0.3, beta: 0.9, gamma: 2, perImage: 1, perClass: 1),
            new JaccardMetricLoss(logLoss: true, classes: ClassSelection.Present),
        };
        foreach (var loss in modules)
        {
            Assert.Equal(0, Value(loss.call(Logits(z), label)), 12);
            // Any other prediction costs something.
            var moved = z.Select(img => img.Select(row => row.ToArray()).ToArray()).ToArray();
            moved[1][2][5] += 0.5;
            Assert.True(Value(loss.call(Logits(moved), label)) > 1e-6);
        }
    }

    [Theory]
    [InlineData(0, 0.0)]
    [InlineData(1, 0.2)]
    [InlineData(2, 0.0)]
    public void HardOneHotPredictionsGiveOneMinusIoU(int seed, double ignoredShare)
    {
        const int batch = 3, classes = 4, pixels = 16;
        var random = new Random(seed);
        var labels = TensorData.RandomLabels(random, batch, pixels, classes, ignoredShare);
        var predicted = TensorData.RandomLabels(random, batch, pixels, classes);
        // Logits 40·onehot(predicted): softmax is one-hot within e^-40.
        var logits = Enumerable.Range(0, batch).Select(b => Enumerable.Range(0, classes)
            .Select(c => predicted[b].Select(v => v == c ? 40.0 : 0.0).ToArray()).ToArray()).ToArray();

        // Brute-force IoU: per class, |pred ∩ label| / |pred ∪ label| over labelled pixels.
        (int Inter, int Union) Count(int c, IEnumerable<int> images)
        {
            int inter = 0, union = 0;
            foreach (var b in images)
                for (int j = 0; j < pixels; j++)
                {
                    if (labels[b][j] == 255) continue;
                    bool inPred = predicted[b][j] == c, inLabel = labels[b][j] == c;
                    inter += inPred && inLabel ? 1 : 0;
                    union += inPred || inLabel ? 1 : 0;
                }
            return (inter, union);
        }
        bool Present(int c, IEnumerable<int> images) => images.Any(b => labels[b].Contains(c));
        double IoU(int c, params int[] images) { var (i, u) = Count(c, images); return (double)i / u; }

        var all = Enumerable.Range(0, batch).ToArray();
        double mIoUD = Enumerable.Range(0, classes).Where(c => Present(c, all)).Average(c => IoU(c, all));
        double mIoUI = all.Average(b => Enumerable.Range(0, classes).Where(c => Present(c, [b])).Average(c => IoU(c, b)));
        double mIoUC = Enumerable.Range(0, classes).Where(c => Present(c, all))
            .Average(c => all.Where(b => Present(c, [b])).Average(b => IoU(c, b)));

        var x = Logits(logits);
        var y = TensorData.Labels(labels, Width);
        const double s = 1e-9;   // smoothing that leaves the IoU as it is
        Assert.Equal(1 - mIoUD, Value(MetricLoss.Jaccard(x, y, smooth: s)), 7);
        Assert.Equal(1 - mIoUI, Value(MetricLoss.Jaccard(x, y, perDataset: 0, perImage: 1, smooth: s)), 7);
        Assert.Equal(1 - mIoUC, Value(MetricLoss.Jaccard(x, y, perDataset: 0, perClass: 1, smooth: s)), 7);
    }

    // ---- gradients ----

    [Theory]
    [InlineData("jaccard all three", false)]
    [InlineData("gamma log weights", false)]
    [InlineData("tversky class gamma", false)]
    [InlineData("dice all-classes image", true)]
    [InlineData("jaccard all three", true)]
    public void GradientMatchesFiniteDifferences(string setting, bool soft)
    {
        var o = Settings(setting);
        var random = new Random(21);
        var logits = Logits(RandomLogits(random, 2, 4, 8)).requires_grad_(true);
        var labels = soft
            ? TensorData.Probas(MetricLossOracle.Softmax(RandomLogits(random, 2, 4, 8)), Width)
            : TensorData.Labels(TensorData.RandomLabels(random, 2, 8, 3, ignoredShare: 0.2), Width);
        if (soft) o = o with { Classes = "all" };
        FiniteDifferences.Check(() => Jml(logits, labels, o), logits);
    }

    // ---- ignore and edge cases ----

    [Fact]
    public void IgnoredPixelsChangeNothingAndGetNoGradient()
    {
        var random = new Random(4);
        var logits = RandomLogits(random, 2, 3, 8);
        var labels = TensorData.RandomLabels(random, 2, 8, 3, ignoredShare: 0.3);
        var changed = logits.Select((img, b) => img.Select(row => row.Select((v, j) => labels[b][j] == 255 ? v + 5 * random.NextDouble() : v).ToArray()).ToArray()).ToArray();
        var y = TensorData.Labels(labels, Width);
        var x = Logits(logits).requires_grad_(true);
        var loss = new JaccardMetricLoss(perDataset: 1, perImage: 1, perClass: 1);
        var value = loss.call(x, y);
        Assert.Equal(Value(value), Value(loss.call(Logits(changed), y)), 12);
        value.backward();
        var grad = TensorData.Values(x.grad!);
        int ignored = 0;
        for (int b = 0; b < 2; b++)
            for (int j = 0; j < 8; j++)
            {
                var pixel = Enumerable.Range(0, 3).Select(c => grad[(b * 3 + c) * 8 + j]).ToArray();
                if (labels[b][j] == 255) { ignored++; Assert.All(pixel, g => Assert.Equal(0.0, g)); }
                else Assert.Contains(pixel, g => g != 0);
            }
        Assert.True(ignored > 0);
    }

    [Theory]
    [InlineData("present")]
    [InlineData("all")]
    public void NoActiveClassGivesZeroWithZeroGradient(string classes)
    {
        var selection = classes == "all" ? ClassSelection.All : ClassSelection.Present;
        var x = randn(2, 3, 2, 2, dtype: ScalarType.Float64).requires_grad_(true);
        foreach (var labels in new[] { full(2, 2, 2, 255L), zeros(2, 3, 2, 2, ScalarType.Float64) })
        {
            x.grad?.zero_();
            var value = MetricLoss.Jaccard(x, labels, perDataset: 1, perImage: 1, perClass: 1, classes: selection);
            Assert.Equal(0.0, Value(value));
            value.backward();
            Assert.All(TensorData.Values(x.grad!), g => Assert.Equal(0.0, g));
        }
    }

    [Fact]
    public void FlatLogitsAreOneImage()
    {
        var random = new Random(8);
        var logits = RandomLogits(random, 1, 3, 8);
        var labels = TensorData.RandomLabels(random, 1, 8, 3, ignoredShare: 0.2);
        var image = Logits(logits);
        var flat = image.reshape(3, 8).t();
        var loss = new DiceMetricLoss(perImage: 1, perClass: 1);
        Assert.Equal(Value(loss.call(image, TensorData.Labels(labels, Width))), Value(loss.call(flat, tensor(labels[0]))), 12);
        var soft = TensorData.Probas(MetricLossOracle.Softmax(RandomLogits(random, 1, 3, 8)), Width);
        Assert.Equal(Value(loss.call(image, soft)), Value(loss.call(flat, soft.reshape(3, 8).t())), 12);
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float16)]
    [InlineData(ScalarType.BFloat16)]
    public void OtherFloatTypesWork(ScalarType dtype)
    {
        var random = new Random(9);
        var logits = Logits(RandomLogits(random, 2, 3, 8));
        var labels = TensorData.Labels(TensorData.RandomLabels(random, 2, 8, 3), Width);
        var loss = new JaccardMetricLoss(perImage: 1);
        var value = loss.call(logits.to(dtype), labels);
        // Computed and returned in float32 whatever the input dtype (the input holds the float32 logits rounded to dtype).
        Assert.Equal(ScalarType.Float32, value.dtype);
        Assert.Equal(Value(loss.call(logits.to(dtype).to(ScalarType.Float32), labels)), Value(value), 1e-6);
    }

    [Fact]
    public void ModuleClassWeightsAndOnlyFollowDtypeAndClassCount()
    {
        // The module keeps its class weights and Only mask between calls; a call in another dtype or with another
        // class count must not reuse them wrongly.
        var (x, y) = HandCase();
        var loss = new JaccardMetricLoss(classWeights: [2, 3], classes: ClassSelection.Only(1));
        for (int i = 0; i < 2; i++)
        {
            Assert.Equal(3 * 4.0 / 7, Value(loss.call(x, y)), 12);
            Assert.Equal(3 * 4.0 / 7, Value(loss.call(x.to(ScalarType.Float32), y)), 6);
        }
        var unweighted = new JaccardMetricLoss(classes: ClassSelection.Only(1));
        var three = cat([x, full(2, 1, 1, 2, -1e9, dtype: ScalarType.Float64)], 1);   // a third class nobody predicts
        Assert.Equal(Value(unweighted.call(x, y)), Value(unweighted.call(three, y)), 9);
    }

    [Fact]
    public void DiceLossIsTheSharedCoreWithHalfTheSmoothing()
    {
        var random = new Random(12);
        var x = Logits(RandomLogits(random, 2, 4, 8));
        var y = TensorData.Labels(TensorData.RandomLabels(random, 2, 8, 3, ignoredShare: 0.2), Width);
        Assert.Equal(Value(MetricLoss.Dice(x, y, smooth: 1.5, classes: ClassSelection.All)), Value(new DiceLoss(smooth: 3).call(x, y)), 12);
    }

    [Fact]
    public void BadInputsGiveClearErrors()
    {
        var x = randn(2, 3, 4, 4);
        var e = Assert.Throws<ArgumentException>(() => MetricLoss.Jaccard(x, rand(2, 3, 4, 5)));
        Assert.Contains("[2,3,4,5]", e.Message);
        Assert.Contains("[2,3,4,4]", e.Message);
        e = Assert.Throws<ArgumentException>(() => MetricLoss.Jaccard(x, zeros(2, 4, 4, ScalarType.Int64).fill_(7)));
        Assert.Contains("label 7 is outside the 3 classes", e.Message);
        e = Assert.Throws<ArgumentException>(() => MetricLoss.Jaccard(x, full(2, 3, 4, 4, 1.5f)));
        Assert.Contains("probabilities in [0,1]", e.Message);
        e = Assert.Throws<ArgumentException>(() => MetricLoss.Jaccard(x, zeros(2, 4, 4, ScalarType.Int64), classWeights: [1, 2]));
        Assert.Contains("2 class weights", e.Message);
        e = Assert.Throws<ArgumentException>(() => MetricLoss.Jaccard(x, zeros(2, 4, 4, ScalarType.Int64), classes: ClassSelection.Only(5)));
        Assert.Contains("names class 5", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new JaccardMetricLoss(gamma: 0.5));
        Assert.Throws<ArgumentOutOfRangeException>(() => new DiceMetricLoss(smooth: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new TverskyLoss(alpha: -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new JaccardMetricLoss(threshold: 1));
        e = Assert.Throws<ArgumentException>(() => new JaccardMetricLoss(perDataset: 0));
        Assert.Contains("all 0", e.Message);
    }
}
