using Seg.Core;
using Seg.Core.Losses;
using Seg.Core.Optim;
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

    /// <summary><c>--device</c> of <c>predict</c> and <c>eval</c> (null: <c>auto</c>): a checkpoint goes onto any
    /// device, whatever it was trained on.</summary>
    /// <exception cref="ArgumentException">An unknown name, or a device this machine cannot give; the message says why.</exception>
    public static Device ResolveDeviceOption(string? name)
    {
        try { return SegRuntime.ResolveDevice(name ?? "auto"); }
        catch (Exception e) when (e is DeviceUnavailableException or ArgumentException)
        {
            throw new ArgumentException($"--device {name}: {e.Message}", e);
        }
    }

    /// <summary>The dataset split <paramref name="split"/> as configured.</summary>
    public static ISegmentationDataset CreateDataset(DataConfig data, string split, int? count, int seed, string source)
    {
        ISegmentationDataset dataset;
        try
        {
            dataset = DatasetFactory.Create(new DatasetOptions
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
        // The losses' and the confusion matrix's rule, named by its key before any step.
        if (IgnoreIndexRule.Problem(dataset.IgnoreIndex, dataset.NumClasses) is { } problem)
            throw new ConfigException(source, "data.ignore_index", problem);
        return dataset;
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
        var options = model.ToModelOptions() with { HeadFactory = HeadFactories.For(model.Head, holder ?? new HeadHolder()) };
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

    /// <summary>The composite loss of the configured terms, each built by its <see cref="LossTypes"/> entry; with
    /// <paramref name="softLabels"/>, the terms that take soft labels (<see cref="LossType.TakesSoftLabels"/>) get
    /// soft labels made from each batch's hard labels.</summary>
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
                var type = LossTypes.Get(t.Type);
                var loss = type.Create(t.Options, new LossBuildContext(ignoreIndex, numClasses, name, head, holder));
                if (softLabels is not null && type.TakesSoftLabels)
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

    /// <summary>SGD (with momentum, optional Nesterov) or AdamW over <paramref name="parameters"/>: over one flat
    /// buffer when <c>optimizer.flat</c> is on and the parameters allow it (one dtype, one device).</summary>
    public static optim.Optimizer CreateOptimizer(OptimizerConfig o, IEnumerable<TorchSharp.Modules.Parameter> parameters)
    {
        var list = parameters.ToList();
        var flat = o.Flat && FlatParameters.Problem(list) is null;
        return o.Type switch
        {
            "sgd" when flat => new FlatSGD(list, o.Lr, momentum: o.Momentum, weight_decay: o.WeightDecay, nesterov: o.Nesterov),
            "sgd" => optim.SGD(list, o.Lr, momentum: o.Momentum, weight_decay: o.WeightDecay, nesterov: o.Nesterov),
            "adamw" when flat => new FlatAdamW(list, o.Lr, beta1: o.Betas[0], beta2: o.Betas[1], weight_decay: o.WeightDecay),
            "adamw" => optim.AdamW(list, o.Lr, beta1: o.Betas[0], beta2: o.Betas[1], weight_decay: o.WeightDecay),
            _ => throw new ArgumentException($"unknown optimizer '{o.Type}'"),
        };
    }
}
