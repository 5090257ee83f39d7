using Seg.Core.Losses;
using Seg.Core.Losses.LovaszLosses;
using Seg.Core.Losses.MarginSoftmax;
using Seg.Core.Losses.MetricLosses;
using Seg.Core.Losses.PixelLosses;
using Seg.Train.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Train.Config;

/// <summary>What a term's module is built from besides its options: the run's ignore index and class count, the
/// term's name, and the classifier head (the margin and center terms work on a cosine head's outputs).</summary>
public sealed record LossBuildContext(long IgnoreIndex, int NumClasses, string Name, HeadConfig Head, HeadHolder? Holder);

/// <summary>One loss type of the config: its key, how its keys are read, how its module is built, and whether it
/// takes soft labels (<c>data.soft_labels</c>).</summary>
public sealed class LossType
{
    readonly Func<ConfigSection, LossOptions> bind;
    readonly Func<LossOptions, LossBuildContext, nn.Module<Tensor, Tensor, Tensor>> create;

    internal LossType(string key, bool takesSoftLabels, Func<ConfigSection, LossOptions> bind,
                      Func<LossOptions, LossBuildContext, nn.Module<Tensor, Tensor, Tensor>> create)
    {
        Key = key;
        TakesSoftLabels = takesSoftLabels;
        this.bind = bind;
        this.create = create;
    }

    /// <summary>The config key (<c>type:</c> of a term).</summary>
    public string Key { get; }

    /// <summary>True for the types that take soft labels when <c>data.soft_labels</c> is set.</summary>
    public bool TakesSoftLabels { get; }

    /// <summary>Reads this type's own keys from a term's section.</summary>
    /// <exception cref="ConfigException">A bad value, naming its key.</exception>
    public LossOptions Bind(ConfigSection term) => bind(term);

    /// <summary>Builds the term's module.</summary>
    /// <exception cref="ArgumentException">Options of another type, or values that do not fit the run (class
    /// weights or ids against the class count, a head the loss cannot work on).</exception>
    public nn.Module<Tensor, Tensor, Tensor> Create(LossOptions options, LossBuildContext context) => create(options, context);
}

/// <summary>
/// Every loss type of the config, each declared once: config key, keys (its <see cref="LossOptions"/> record and
/// binder) and constructor. <see cref="ConfigLoader"/> reads terms through it and
/// <see cref="RunFactory.CreateLoss"/> builds them through it; adding a type is adding a line here.
/// </summary>
public static class LossTypes
{
    /// <summary>The types, in the order the config's messages list them.</summary>
    public static IReadOnlyList<LossType> All { get; } =
    [
        Type<CrossEntropyOptions>("cross_entropy", s =>
            {
                var d = new CrossEntropyOptions();
                return new CrossEntropyOptions(s.DoubleList("class_weights", min: 0.0),
                    s.Double("label_smoothing", d.LabelSmoothing, 0.0, 1.0), s.Double("temperature", d.Temperature, 1e-6));
            },
            (o, c) => new SoftmaxCrossEntropyLoss(ClassWeights(o.ClassWeights, c), c.IgnoreIndex, o.LabelSmoothing, o.Temperature, c.Name)),
        Type<LovaszSoftmaxOptions>("lovasz_softmax", s =>
            {
                var d = new LovaszSoftmaxOptions();
                return new LovaszSoftmaxOptions(Classes(s, "present", auto: false) ?? d.Classes, s.Bool("per_image", d.PerImage), s.Int("bins", d.Bins, 0));
            },
            (o, c) => new LovaszSoftmaxLoss(CheckedClasses(o.Classes, c), o.PerImage, c.IgnoreIndex, o.Bins, c.Name)),
        Type<LovaszHingeOptions>("lovasz_hinge", s => new LovaszHingeOptions(s.Bool("per_image", new LovaszHingeOptions().PerImage)),
            (o, c) => new LovaszHingeLoss(o.PerImage, c.IgnoreIndex, c.Name)),
        Type<LovaszSigmoidOptions>("lovasz_sigmoid", s => new LovaszSigmoidOptions(s.Bool("per_image", new LovaszSigmoidOptions().PerImage)),
            (o, c) => new LovaszSigmoidLoss(o.PerImage, c.IgnoreIndex, c.Name)),
        Type<DiceOptions>("dice", s => new DiceOptions(Positive(s, "smooth", new DiceOptions().Smooth)),
            (o, c) => new DiceLoss(o.Smooth, c.IgnoreIndex, c.Name)),
        Type<FocalOptions>("focal", s =>
            {
                var d = new FocalOptions();
                return new FocalOptions(s.Double("gamma", d.Gamma, 0.0), s.Double("alpha", d.Alpha, 0.0));
            },
            (o, c) => new FocalLoss(o.Gamma, o.Alpha, c.IgnoreIndex, c.Name)),
        Type<MarginCrossEntropyOptions>("margin_cross_entropy", _ => new MarginCrossEntropyOptions(),
            (_, c) => new MarginCrossEntropyLoss(CosineHead(c, "margin_cross_entropy").Margin switch
                {
                    "am" => MarginKind.Am,
                    "arcface" => MarginKind.ArcFace,
                    _ => MarginKind.None,
                }, c.Head.Scale, c.Head.MarginValue, c.IgnoreIndex)),
        Type<CenterOptions>("center", s =>
            {
                var d = new CenterOptions();
                return new CenterOptions(s.Double("center_alpha", d.CenterAlpha, 0.0, 1.0), s.Int("max_pixels", d.MaxPixels, 1));
            },
            (o, c) => new CenterTerm(CosineHolder(c), c.Head.EmbeddingDim, c.NumClasses, o.CenterAlpha, o.MaxPixels, c.IgnoreIndex, c.Name)),
        Type<MetricLossOptions>("jaccard_metric", s => BindMetric(s, new MetricLossOptions()), takesSoftLabels: true,
            create: (o, c) => new JaccardMetricLoss(o.PerDataset, o.PerImage, o.PerClass, o.Smooth, o.Gamma, o.LogLoss,
                ClassWeights(o.ClassWeights, c)?.ToArray(), CheckedClasses(o.Classes, c), o.Threshold, c.IgnoreIndex, c.Name)),
        Type<MetricLossOptions>("dice_metric", s => BindMetric(s, new MetricLossOptions()), takesSoftLabels: true,
            create: (o, c) => new DiceMetricLoss(o.PerDataset, o.PerImage, o.PerClass, o.Smooth, o.Gamma, o.LogLoss,
                ClassWeights(o.ClassWeights, c)?.ToArray(), CheckedClasses(o.Classes, c), o.Threshold, c.IgnoreIndex, c.Name)),
        Type<TverskyOptions>("tversky", s =>
            {
                var d = new TverskyOptions();
                // Read in the order of the keys' meaning: the metric keys first, then the two weights.
                var metric = BindMetric(s, d);
                return ((TverskyOptions)metric) with { Alpha = s.Double("alpha", d.Alpha, 0.0), Beta = s.Double("beta", d.Beta, 0.0) };
            }, takesSoftLabels: true,
            create: (o, c) => new TverskyLoss(o.Alpha, o.Beta, o.Gamma, o.PerDataset, o.PerImage, o.PerClass, o.Smooth, o.LogLoss,
                ClassWeights(o.ClassWeights, c)?.ToArray(), CheckedClasses(o.Classes, c), o.Threshold, c.IgnoreIndex, c.Name)),
    ];

    /// <summary>The config keys of <see cref="All"/>.</summary>
    public static string[] Keys { get; } = All.Select(t => t.Key).ToArray();

    /// <summary>The type of config key <paramref name="key"/>.</summary>
    /// <exception cref="ArgumentException">No such type, naming the closest.</exception>
    public static LossType Get(string key) => All.FirstOrDefault(t => t.Key == key)
        ?? throw new ArgumentException($"loss type '{key}' is not one of {string.Join(", ", Keys)} (closest valid value: '{ClosestKey.Find(key, Keys)}')");

    static LossType Type<TOptions>(string key, Func<ConfigSection, TOptions> bind,
                                   Func<TOptions, LossBuildContext, nn.Module<Tensor, Tensor, Tensor>> create, bool takesSoftLabels = false)
        where TOptions : LossOptions =>
        new(key, takesSoftLabels, bind, (options, context) => options is TOptions o ? create(o, context)
            : throw new ArgumentException($"a '{key}' term needs {typeof(TOptions).Name}, got {options.GetType().Name}"));

    /// <summary>The keys of the metric losses; <paramref name="defaults"/> gives the defaults and the record type.</summary>
    static MetricLossOptions BindMetric(ConfigSection s, MetricLossOptions defaults)
    {
        if (s.OptionalString("per_image") is "true" or "false" or "yes" or "no" or "on" or "off")
            throw s.Error("per_image", $"for a '{s.OptionalString("type")}' term per_image is the weight of the per-image aggregation (a number such as 0.5), not a switch");
        var o = defaults with
        {
            PerDataset = s.Double("per_dataset", defaults.PerDataset, 0.0),
            PerImage = s.Double("per_image", defaults.PerImage, 0.0),
            PerClass = s.Double("per_class", defaults.PerClass, 0.0),
            Smooth = Positive(s, "smooth", defaults.Smooth),
            Gamma = s.Double("gamma", defaults.Gamma, 1.0),
            LogLoss = s.Bool("log_loss", defaults.LogLoss),
            ClassWeights = s.DoubleList("class_weights", min: 0.0),
            Classes = Classes(s, "auto", auto: true),
            Threshold = s.Double("threshold", defaults.Threshold, 0.0, 1.0),
        };
        if (o.Threshold >= 1) throw s.Error("threshold", "1 is not below 1: no label exceeds it, so no class would be present");
        if (o.PerDataset + o.PerImage + o.PerClass == 0)
            throw s.Error("per_dataset", "per_dataset, per_image and per_class are all 0; give at least one aggregation a positive weight");
        return o;
    }

    /// <summary>Key <c>classes</c>, as MMSegmentation's losses take it: <c>present</c>, <c>all</c> or a list of
    /// class ids (and <c>auto</c>, null, where the loss chooses). Absent: <paramref name="fallback"/>.</summary>
    static ClassSelection? Classes(ConfigSection s, string fallback, bool auto)
    {
        if (s.IsList("classes"))
        {
            var ids = s.IntList("classes", min: 0)!;
            try { return ClassSelection.Only(ids.Select(id => (long)id).ToArray()); }
            catch (ArgumentException e) { throw s.Error("classes", e.Message); }
        }
        string[] words = auto ? ["auto", "present", "all"] : ["present", "all"];
        var value = s.String("classes", fallback);
        return value switch
        {
            "present" => ClassSelection.Present,
            "all" => ClassSelection.All,
            "auto" when auto => null,
            _ => throw s.Error("classes", $"'{value}' is not one of {string.Join(", ", words)} or a list of class ids " +
                                          $"(closest valid value: '{ClosestKey.Find(value, words)}')"),
        };
    }

    /// <summary>Class ids of a <c>classes</c> list must name classes of the run.</summary>
    static ClassSelection CheckedClasses(ClassSelection classes, LossBuildContext c) =>
        CheckedClasses((ClassSelection?)classes, c)!.Value;

    static ClassSelection? CheckedClasses(ClassSelection? classes, LossBuildContext c)
    {
        foreach (var id in classes?.ClassIds ?? [])
            if (id >= c.NumClasses)
                throw new ArgumentException($"classes lists class id {id}, but the run has {c.NumClasses} classes (ids 0 to {c.NumClasses - 1})");
        return classes;
    }

    static IReadOnlyList<double>? ClassWeights(IReadOnlyList<double>? weights, LossBuildContext c) =>
        weights is { } w && w.Count != c.NumClasses
            ? throw new ArgumentException($"{w.Count} class weights given for {c.NumClasses} classes")
            : weights;

    static HeadConfig CosineHead(LossBuildContext c, string key) => c.Head.Type == "cosine" ? c.Head
        : throw new ArgumentException($"'{key}' works on a cosine head's outputs: set model.head.type: cosine");

    static HeadHolder CosineHolder(LossBuildContext c) => CosineHead(c, "center") is not null && c.Holder is { } holder ? holder
        : throw new ArgumentException("'center' works on a cosine head's outputs: set model.head.type: cosine");

    static double Positive(ConfigSection s, string key, double fallback)
    {
        var value = s.Double(key, fallback, 0.0);
        return value > 0 ? value : throw s.Error(key, $"{value} must be positive");
    }
}
