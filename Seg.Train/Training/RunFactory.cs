using Seg.Core;
using Seg.Core.Losses;
using Seg.Data;
using Seg.Models;
using Seg.Train.Config;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Train.Training;

/// <summary>
/// Turns config sections into the objects a run needs (device, datasets, transforms, model, loss, optimizer).
/// Errors of the library factories are re-thrown as <see cref="ConfigException"/> naming the config key at fault,
/// so that a bad value stops the run before the first step.
/// </summary>
public static class RunFactory
{
    /// <summary><c>auto</c> picks CUDA when it works, else the CPU; a CUDA request that cannot be met names the
    /// cause (see <see cref="SegRuntime.ResolveDevice"/>).</summary>
    public static Device ResolveDevice(string name, string source)
    {
        try { return SegRuntime.ResolveDevice(name); }
        catch (DeviceUnavailableException e) { throw new ConfigException(source, "train.device", e.Message); }
    }

    /// <summary>The dataset split <paramref name="split"/> as configured.</summary>
    public static ISegmentationDataset CreateDataset(DataConfig data, string split, int? count, int seed, string source)
    {
        try
        {
            return DatasetFactory.Create(new DatasetOptions
            {
                Type = data.Type,
                Root = data.Root,
                Split = split,
                NumClasses = data.NumClasses,
                IgnoreIndex = data.IgnoreIndex,
                Size = data.Size,
                Count = count,
                Seed = seed,
                OnBadSample = data.OnBadSample == "skip" ? BadSampleMode.Skip : BadSampleMode.Error,
                ClassNames = data.ClassNames,
            });
        }
        catch (ArgumentException e)
        {
            var key = e.Message.Contains("data.type", StringComparison.Ordinal) ? "data.type" : "data";
            var closest = key == "data.type" ? $" (closest valid value: '{ClosestKey.Find(data.Type, DatasetFactory.Types)}')" : "";
            throw new ConfigException(source, key, e.Message + closest);
        }
    }

    /// <summary>
    /// The training pipeline: the configured <c>data.augment</c> list, or random scale, crop to
    /// <c>data.crop_size</c>, flip and normalise.
    /// </summary>
    public static TransformPipeline TrainPipeline(DataConfig data, string source) =>
        Pipeline(data.Augment ?? [
            new TransformConfig("random_scale", new Dictionary<string, object?> { ["range"] = new List<object?> { 0.5, 2.0 } }),
            new TransformConfig("random_crop", new Dictionary<string, object?> { ["size"] = data.CropSize.Select(v => (object?)(long)v).ToList() }),
            new TransformConfig("horizontal_flip", new Dictionary<string, object?>()),
            new TransformConfig("normalize", new Dictionary<string, object?>()),
        ], "data.augment", source);

    /// <summary>The validation pipeline: <c>data.val_transforms</c>, or the training pipeline's normalisation.</summary>
    public static TransformPipeline ValPipeline(DataConfig data, TransformPipeline train, string source) =>
        data.ValTransforms is { } list ? Pipeline(list, "data.val_transforms", source)
            : new TransformPipeline(train.Normalization is { } n ? [n] : []);

    static TransformPipeline Pipeline(IReadOnlyList<TransformConfig> items, string key, string source)
    {
        var transforms = new List<ISegmentationTransform>();
        for (var i = 0; i < items.Count; i++)
        {
            try { transforms.Add(TransformFactory.Create(items[i].Type, items[i].Args)); }
            catch (ArgumentException e)
            {
                var closest = TransformFactory.Types.Contains(items[i].Type) ? ""
                    : $" (closest valid value: '{ClosestKey.Find(items[i].Type, TransformFactory.Types)}')";
                throw new ConfigException(source, $"{key}[{i}]", e.Message + closest);
            }
        }
        return new TransformPipeline(transforms);
    }

    /// <summary>The network, with the configured classifier head, before any weights are loaded.</summary>
    public static nn.Module<Tensor, Tensor> CreateModel(ModelConfig model, int numClasses, string source, HeadHolder? holder = null)
    {
        var options = new ModelOptions
        {
            AuxHead = model.AuxHead,
            OutputStride = model.OutputStride,
            UnetDepth = model.UnetDepth,
            UnetBaseWidth = model.UnetBaseWidth,
            UnetBilinear = model.UnetBilinear,
            HeadFactory = HeadFactories.For(model.Head, holder ?? new HeadHolder()),
        };
        try
        {
            return ModelFactory.Create(model.Name, numClasses, options);
        }
        catch (ArgumentException e)
        {
            var known = ModelFactory.Names.Contains(model.Name, StringComparer.OrdinalIgnoreCase);
            throw new ConfigException(source, known ? "model" : "model.name",
                e.Message + (known ? "" : $" (closest valid value: '{ClosestKey.Find(model.Name, ModelFactory.Names)}')"));
        }
    }

    /// <summary>
    /// Loads <c>model.pretrained</c> (a path, <c>imagenet</c>, <c>coco_voc</c> or a URL with its SHA-256, downloaded
    /// and checked by <see cref="PretrainedWeights"/>) into <paramref name="model"/>. Returns a one-line summary.
    /// </summary>
    public static string LoadPretrained(nn.Module model, ModelConfig config) =>
        PretrainedWeights.Load(model, config.Name, PretrainedSource.Parse(config.Pretrained!, config.PretrainedSha256)).ToString();

    /// <summary>The composite loss of the configured terms; with <paramref name="softLabels"/>, the soft-label terms
    /// (<see cref="ConfigLoader.SoftLabelLossTypes"/>) get soft labels made from each batch's hard labels.</summary>
    public static CompositeLoss CreateLoss(IReadOnlyList<LossTermConfig> terms, long ignoreIndex, int numClasses, string source,
        HeadConfig? head = null, HeadHolder? holder = null, SoftLabelsConfig? softLabels = null)
    {
        head ??= new HeadConfig();
        var built = new List<LossTerm>();
        for (var i = 0; i < terms.Count; i++)
        {
            var t = terms[i];
            var name = t.Name ?? t.Type;
            try
            {
                if (t.ClassWeights is { } w && w.Count != numClasses)
                    throw new ArgumentException($"{w.Count} class weights given for {numClasses} classes");
                nn.Module<Tensor, Tensor, Tensor> loss = t.Type switch
                {
                    "cross_entropy" => new CrossEntropyLoss(t.ClassWeights, ignoreIndex, t.LabelSmoothing, t.Temperature, name),
                    "lovasz_softmax" => new LovaszSoftmaxLoss(t.Classes == "all" ? ClassSelection.All : ClassSelection.Present, t.PerImage, ignoreIndex, t.Bins, name),
                    "lovasz_hinge" => new LovaszHingeLoss(t.PerImage, ignoreIndex, name),
                    "lovasz_sigmoid" => new LovaszSigmoidLoss(t.PerImage, ignoreIndex, name),
                    "jaccard_metric" => new JaccardMetricLoss(t.PerDataset, t.PerImageWeight, t.PerClass, t.Smooth, t.Gamma,
                        t.LogLoss, t.ClassWeights?.ToArray(), MetricClasses(t.Classes), t.Threshold, ignoreIndex, name),
                    "dice_metric" => new DiceMetricLoss(t.PerDataset, t.PerImageWeight, t.PerClass, t.Smooth, t.Gamma,
                        t.LogLoss, t.ClassWeights?.ToArray(), MetricClasses(t.Classes), t.Threshold, ignoreIndex, name),
                    "tversky" => new TverskyLoss(t.Alpha, t.Beta, t.Gamma, t.PerDataset, t.PerImageWeight, t.PerClass, t.Smooth,
                        t.LogLoss, t.ClassWeights?.ToArray(), MetricClasses(t.Classes), t.Threshold, ignoreIndex, name),
                    "dice" => new DiceLoss(t.Smooth, ignoreIndex, name),
                    "focal" => new FocalLoss(t.Gamma, t.Alpha, ignoreIndex, name),
                    "margin_cross_entropy" when head.Type == "cosine" => new MarginCrossEntropyLoss(
                        head.Margin switch { "am" => MarginKind.Am, "arcface" => MarginKind.ArcFace, _ => MarginKind.None },
                        head.Scale, head.MarginValue, ignoreIndex),
                    "center" when head.Type == "cosine" && holder is not null => new CenterTerm(
                        holder, head.EmbeddingDim, numClasses, t.CenterAlpha, t.MaxPixels, ignoreIndex, name),
                    "margin_cross_entropy" or "center" => throw new ArgumentException(
                        $"'{t.Type}' works on a cosine head's outputs: set model.head.type: cosine"),
                    _ => throw new ArgumentException($"loss type '{t.Type}' is not available in this build"),
                };
                if (softLabels is not null && ConfigLoader.SoftLabelLossTypes.Contains(t.Type))
                    loss = new SoftLabelTerm(loss, numClasses, softLabels.Epsilon, softLabels.Kernel, ignoreIndex, name);
                built.Add(new LossTerm(name, loss, t.Weight, t.Start, t.End));
            }
            catch (ArgumentException e)
            {
                throw new ConfigException(source, $"loss[{i}]", e.Message);
            }
        }
        return new CompositeLoss(built);
    }

    /// <summary>A metric loss's <c>classes</c>: <c>auto</c> leaves the choice to the loss (present for hard labels,
    /// all for soft labels).</summary>
    static ClassSelection? MetricClasses(string classes) => classes switch
    {
        "present" => ClassSelection.Present,
        "all" => ClassSelection.All,
        _ => null,
    };

    /// <summary>SGD (with momentum, optional Nesterov) or AdamW over <paramref name="parameters"/>.</summary>
    public static optim.Optimizer CreateOptimizer(OptimizerConfig o, IEnumerable<TorchSharp.Modules.Parameter> parameters) => o.Type switch
    {
        "sgd" => optim.SGD(parameters, o.Lr, momentum: o.Momentum, weight_decay: o.WeightDecay, nesterov: o.Nesterov),
        "adamw" => optim.AdamW(parameters, o.Lr, beta1: o.Betas[0], beta2: o.Betas[1], weight_decay: o.WeightDecay),
        _ => throw new ArgumentException($"unknown optimizer '{o.Type}'"),
    };
}
