using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses.MetricLosses;

/// <summary>
/// The validated parameters of a <see cref="MetricLoss"/> (Jaccard metric, Dice semimetric or Tversky loss); the
/// modules <see cref="JaccardMetricLoss"/>, <see cref="DiceMetricLoss"/> and <see cref="TverskyLoss"/> each keep one.
/// </summary>
public sealed class MetricLossSettings
{
    readonly double[]? classWeights;

    /// <summary>Checks and keeps the parameters (see <see cref="MetricLoss.Tversky"/> for their meaning).</summary>
    /// <exception cref="ArgumentOutOfRangeException">A parameter outside its range (named, with the range).</exception>
    /// <exception cref="ArgumentException">All three aggregation weights zero, or bad class weights.</exception>
    public MetricLossSettings(double alpha, double beta, double gamma, double perDataset, double perImage, double perClass,
                              double smooth, bool logLoss, IReadOnlyList<double>? classWeights, ClassSelection? classes,
                              double threshold, long? ignoreIndex)
    {
        NonNegative(alpha, nameof(alpha));
        NonNegative(beta, nameof(beta));
        if (!(gamma >= 1) || double.IsInfinity(gamma))
            throw new ArgumentOutOfRangeException(nameof(gamma), gamma, "gamma must be finite and at least 1.");
        NonNegative(perDataset, nameof(perDataset));
        NonNegative(perImage, nameof(perImage));
        NonNegative(perClass, nameof(perClass));
        if (perDataset + perImage + perClass == 0)
            throw new ArgumentException("perDataset, perImage and perClass are all 0: give at least one aggregation a positive weight.", nameof(perDataset));
        // smooth > 0 keeps T = (tp+s)/(tp+α·fp+β·fn+s) defined (and its gradient finite) for a class that neither
        // the prediction nor the label holds; the official code's configs all use 1.
        if (!(smooth > 0) || double.IsInfinity(smooth))
            throw new ArgumentOutOfRangeException(nameof(smooth), smooth, "smooth must be positive and finite.");
        if (!(threshold >= 0 && threshold < 1))
            throw new ArgumentOutOfRangeException(nameof(threshold), threshold, "threshold must lie in [0,1).");
        if (classWeights is not null && classWeights.Any(w => !(w >= 0) || double.IsInfinity(w)))
            throw new ArgumentException($"class weights must be finite and non-negative: [{string.Join(",", classWeights)}].", nameof(classWeights));
        Alpha = alpha;
        Beta = beta;
        Gamma = gamma;
        PerDataset = perDataset;
        PerImage = perImage;
        PerClass = perClass;
        Smooth = smooth;
        LogLoss = logLoss;
        this.classWeights = classWeights?.ToArray();
        Classes = classes;
        Threshold = threshold;
        IgnoreIndex = ignoreIndex;
    }

    readonly object cacheLock = new();
    Tensor? weightCache, onlyCache;

    /// <summary>The class weights as a tensor on <paramref name="like"/>'s device and dtype, or null. Kept between
    /// calls: building it from host memory each step would copy and, on an accelerator, wait for the stream.</summary>
    internal Tensor? WeightsLike(Tensor like)
    {
        if (classWeights is null) return null;
        lock (cacheLock)
            return Cached(ref weightCache, like.device, like.dtype, classWeights.Length,
                          () => tensor(classWeights, dtype: like.dtype, device: like.device));
    }

    /// <summary>[C] mask of the classes of <see cref="ClassSelection.Only"/> on <paramref name="device"/>, kept
    /// between calls like <see cref="WeightsLike"/>.</summary>
    internal Tensor OnlyMask(IReadOnlyList<long> ids, long classCount, Device device)
    {
        lock (cacheLock)
            return Cached(ref onlyCache, device, ScalarType.Bool, classCount, () =>
            {
                var mask = new bool[classCount];
                foreach (var id in ids) mask[id] = true;
                return tensor(mask, device: device);
            });
    }

    static Tensor Cached(ref Tensor? cache, Device device, ScalarType dtype, long length, Func<Tensor> create)
    {
        if (cache is not null && cache.device_type == device.type && cache.device_index == device.index
            && cache.dtype == dtype && cache.shape[0] == length)
            return cache;
        cache?.Dispose();
        cache = create().DetachFromDisposeScope();
        return cache;
    }

    static void NonNegative(double value, string name)
    {
        if (!(value >= 0) || double.IsInfinity(value))
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be finite and non-negative.");
    }

    /// <summary>Weight α of the false positives.</summary>
    public double Alpha { get; }
    /// <summary>Weight β of the false negatives.</summary>
    public double Beta { get; }
    /// <summary>Focal exponent γ ≥ 1 of each class's loss.</summary>
    public double Gamma { get; }
    /// <summary>Weight of the per-dataset aggregation (targets mIoU^D).</summary>
    public double PerDataset { get; }
    /// <summary>Weight of the per-image aggregation (targets mIoU^I).</summary>
    public double PerImage { get; }
    /// <summary>Weight of the per-class-over-images aggregation (targets mIoU^C).</summary>
    public double PerClass { get; }
    /// <summary>Additive smoothing s &gt; 0.</summary>
    public double Smooth { get; }
    /// <summary>−log T instead of 1 − T.</summary>
    public bool LogLoss { get; }
    /// <summary>One factor per class, or null.</summary>
    public IReadOnlyList<double>? ClassWeights => classWeights;
    /// <summary>Active classes; null: Present for hard labels, All for soft labels.</summary>
    public ClassSelection? Classes { get; }
    /// <summary>A class is present where its label exceeds this value somewhere in the set.</summary>
    public double Threshold { get; }
    /// <summary>Ignored label of hard labels, or null.</summary>
    public long? IgnoreIndex { get; }
}
