using Seg.Models;

namespace Seg.Train.Config;

/// <summary>
/// A whole training recipe, as read from YAML (see <see cref="ConfigLoader"/>). Every key has a default, so a
/// config naming only <c>data.type</c>, <c>data.root</c> and <c>model.name</c> runs.
/// </summary>
public sealed record TrainConfig
{
    /// <summary>Run name; also the default output folder <c>runs/NAME</c>.</summary>
    public string Name { get; init; } = "run";
    /// <summary>Network (<c>model:</c>).</summary>
    public ModelConfig Model { get; init; } = new();
    /// <summary>Dataset, loader and augmentation (<c>data:</c>).</summary>
    public DataConfig Data { get; init; } = new();
    /// <summary>Loss terms, summed with their weights and schedules (<c>loss:</c>).</summary>
    public IReadOnlyList<LossTermConfig> Loss { get; init; } = [new LossTermConfig()];
    /// <summary>Optimizer (<c>optimizer:</c>).</summary>
    public OptimizerConfig Optimizer { get; init; } = new();
    /// <summary>Learning-rate schedule (<c>schedule:</c>).</summary>
    public ScheduleConfig Schedule { get; init; } = new();
    /// <summary>Loop length, cadence, seed and device (<c>train:</c>).</summary>
    public TrainLoopConfig Train { get; init; } = new();
    /// <summary>Evaluation mode and test-time augmentation (<c>eval:</c>).</summary>
    public EvalConfig Eval { get; init; } = new();
    /// <summary>Seed of the generated datasets' samples: <c>data.seed</c>, else <c>train.seed</c>.</summary>
    public int DataSeed => Data.Seed ?? Train.Seed;
}

/// <summary><c>model:</c> a <c>Seg.Models.ModelFactory</c> name and its options.</summary>
public sealed record ModelConfig
{
    /// <summary>ModelFactory name, e.g. <c>unet</c>, <c>deeplabv3plus_resnet50</c>.</summary>
    public string Name { get; init; } = "unet";
    /// <summary>Optional weights loaded before training: a file (non-strict; missing/unexpected keys reported),
    /// <c>imagenet</c>, <c>coco_voc</c>, or a URL (written <c>{ url: ..., sha256: ... }</c>); see <c>Seg.Models.PretrainedWeights</c>.</summary>
    public string? Pretrained { get; init; }
    /// <summary>The full SHA-256 of <see cref="Pretrained"/>'s URL (from <c>{ url, sha256 }</c>); null checks the name's hash prefix.</summary>
    public string? PretrainedSha256 { get; init; }
    /// <summary>Auxiliary head (DeepLab/FCN family).</summary>
    public bool AuxHead { get; init; }
    /// <summary>Output stride of dilated backbones (<see cref="ModelOptions.OutputStrides"/>).</summary>
    public int OutputStride { get; init; } = Defaults.OutputStride;

    /// <summary>The output stride the model really runs at, where <see cref="OutputStride"/> applies: DeepLabV3+
    /// only, and with a ConvNeXt encoder always 32 (its down-sampling cannot be dilated); null for other models.</summary>
    public int? EffectiveOutputStride => Name.StartsWith(DeepLabV3PlusPrefix, StringComparison.Ordinal)
        ? Seg.Models.Backbones.EncoderCatalog.EffectiveOutputStride(Name[DeepLabV3PlusPrefix.Length..], OutputStride)
        : null;

    const string DeepLabV3PlusPrefix = "deeplabv3plus_";
    /// <summary>UNet depth (number of down-sampling stages).</summary>
    public int UnetDepth { get; init; } = Defaults.UnetDepth;
    /// <summary>UNet channels of the first stage.</summary>
    public int UnetBaseWidth { get; init; } = Defaults.UnetBaseWidth;
    /// <summary>UNet up-sampling by bilinear interpolation instead of transposed convolution.</summary>
    public bool UnetBilinear { get; init; } = Defaults.UnetBilinear;
    /// <summary>Weight of the auxiliary head's loss (same loss terms) when <see cref="AuxHead"/> is on.</summary>
    public double AuxWeight { get; init; } = 0.4;
    /// <summary>Batch-norm statistics over the global batch of a data-parallel job (<c>SyncBatchNorm</c>, forward
    /// and backward); off: each process normalises with its own batch. No effect in one process.</summary>
    public bool SyncBn { get; init; }
    /// <summary>Classifier head (<c>model.head:</c>).</summary>
    public HeadConfig Head { get; init; } = new();

    static readonly ModelOptions Defaults = new();

    /// <summary>The architecture options these keys map onto (the head factory aside), which the models check.</summary>
    public ModelOptions ToModelOptions() => new()
    {
        AuxHead = AuxHead,
        OutputStride = OutputStride,
        UnetDepth = UnetDepth,
        UnetBaseWidth = UnetBaseWidth,
        UnetBilinear = UnetBilinear,
    };
}

/// <summary><c>model.head:</c> the classifier: a plain 1x1 convolution or a cosine (normalised) head with a margin.</summary>
public sealed record HeadConfig
{
    /// <summary><c>linear</c> (default) or <c>cosine</c>.</summary>
    public string Type { get; init; } = "linear";
    /// <summary>Cosine head margin: <c>none</c>, <c>am</c> (additive cosine) or <c>arcface</c> (additive angular).</summary>
    public string Margin { get; init; } = "none";
    /// <summary>Cosine head scale s.</summary>
    public double Scale { get; init; } = 16.0;
    /// <summary>Margin m.</summary>
    public double MarginValue { get; init; } = 0.2;
    /// <summary>Cosine head embedding size.</summary>
    public int EmbeddingDim { get; init; } = 64;
}

/// <summary><c>data:</c> dataset, loader and augmentation.</summary>
public sealed record DataConfig
{
    /// <summary>Dataset type (DatasetFactory name), e.g. <c>shapes</c>, <c>fmnist_scenes</c>, <c>voc</c>, <c>cityscapes</c>.</summary>
    public string Type { get; init; } = "shapes";
    /// <summary>Dataset root folder (unused by generated datasets).</summary>
    public string? Root { get; init; }
    /// <summary>Number of classes; null takes the dataset's.</summary>
    public int? NumClasses { get; init; }
    /// <summary>Label value that marks pixels to ignore.</summary>
    public long IgnoreIndex { get; init; } = 255;
    /// <summary>Training crop [height, width].</summary>
    public IReadOnlyList<int> CropSize { get; init; } = [512, 512];
    /// <summary>Images per training batch.</summary>
    public int BatchSize { get; init; } = 8;
    /// <summary>Loader worker threads.</summary>
    public int Workers { get; init; } = 2;
    /// <summary><c>error</c> (stop naming the file) or <c>skip</c> for unreadable or inconsistent samples.</summary>
    public string OnBadSample { get; init; } = "error";
    /// <summary>Training split name.</summary>
    public string TrainSplit { get; init; } = "train";
    /// <summary>Validation split name.</summary>
    public string ValSplit { get; init; } = "val";
    /// <summary>Side of the square images of generated datasets (shapes, fmnist_scenes).</summary>
    public int Size { get; init; } = 128;
    /// <summary>Training samples of a generated dataset (null: the dataset's default).</summary>
    public int? TrainCount { get; init; }
    /// <summary>Validation samples of a generated dataset (null: the dataset's default).</summary>
    public int? ValCount { get; init; }
    /// <summary>Seed of the generated datasets' samples (shapes, fmnist_scenes); null: <c>train.seed</c>. Setting it
    /// keeps the scenes (train and val) fixed while <c>train.seed</c> varies weights, data order and augmentation.</summary>
    public int? Seed { get; init; }
    /// <summary>Class names for the <c>folder</c> dataset.</summary>
    public IReadOnlyList<string>? ClassNames { get; init; }
    /// <summary>Training augmentation, in order (each item: <c>type</c> plus its arguments). Null: a default
    /// pipeline built from <see cref="CropSize"/> (random scale, crop, flip, normalise).</summary>
    public IReadOnlyList<TransformConfig>? Augment { get; init; }
    /// <summary>Validation transforms (normalise by default).</summary>
    public IReadOnlyList<TransformConfig>? ValTransforms { get; init; }
    /// <summary>Soft labels for the terms that take them (<c>data.soft_labels</c>); null: hard labels only.</summary>
    public SoftLabelsConfig? SoftLabels { get; init; }
}

/// <summary><c>data.soft_labels:</c> soft labels made from the hard labels of each batch for the soft-label
/// terms (<see cref="LossType.TakesSoftLabels"/>); the other terms keep the hard labels.</summary>
public sealed record SoftLabelsConfig
{
    /// <summary><c>boundary</c>: boundary label smoothing (<c>Seg.Core.Losses.MetricLosses.SoftLabels.BoundarySmoothing</c>).</summary>
    public string Type { get; init; } = "boundary";
    /// <summary>Smoothing ε in [0,1].</summary>
    public double Epsilon { get; init; } = 0.5;
    /// <summary>Window side k (odd).</summary>
    public int Kernel { get; init; } = 3;
}

/// <summary>One transform: a TransformFactory type name and its arguments as written in YAML.</summary>
public sealed record TransformConfig(string Type, IReadOnlyDictionary<string, object?> Args);

/// <summary>One <c>loss:</c> term (a CompositeLoss LossTerm).</summary>
public sealed record LossTermConfig
{
    /// <summary>One of <see cref="LossTypes.Keys"/>; each type reads its own keys.</summary>
    public string Type { get; init; } = "cross_entropy";
    /// <summary>Term weight.</summary>
    public double Weight { get; init; } = 1.0;
    /// <summary>Fraction of training at which the term switches on.</summary>
    public double Start { get; init; }
    /// <summary>Fraction of training at which the term switches off.</summary>
    public double End { get; init; } = 1.0;
    /// <summary>Name used in logs (default: the type).</summary>
    public string? Name { get; init; }
    /// <summary>The keys of its type: the <see cref="LossOptions"/> record of <see cref="Type"/> (see
    /// <see cref="LossTypes"/>).</summary>
    public LossOptions Options { get; init; } = new CrossEntropyOptions();
}

/// <summary><c>optimizer:</c></summary>
public sealed record OptimizerConfig
{
    /// <summary><c>sgd</c> or <c>adamw</c>.</summary>
    public string Type { get; init; } = "sgd";
    /// <summary>Base learning rate.</summary>
    public double Lr { get; init; } = 0.01;
    /// <summary>SGD momentum.</summary>
    public double Momentum { get; init; } = 0.9;
    /// <summary>Weight decay.</summary>
    public double WeightDecay { get; init; } = 0.0005;
    /// <summary>SGD Nesterov momentum.</summary>
    public bool Nesterov { get; init; }
    /// <summary>AdamW betas.</summary>
    public IReadOnlyList<double> Betas { get; init; } = [0.9, 0.999];
    /// <summary>Update all parameters through one flat buffer (<see cref="Seg.Core.Optim.FlatSGD"/>,
    /// <see cref="Seg.Core.Optim.FlatAdamW"/>) rather than TorchSharp's loop over parameter tensors.</summary>
    public bool Flat { get; init; } = true;
}

/// <summary><c>schedule:</c> the learning rate as a function of the global iteration (no scheduler state).</summary>
public sealed record ScheduleConfig
{
    /// <summary><c>poly</c>, <c>cosine</c> or <c>constant</c>.</summary>
    public string Type { get; init; } = "poly";
    /// <summary>Poly exponent.</summary>
    public double Power { get; init; } = 0.9;
    /// <summary>Linear warm-up length in iterations.</summary>
    public int WarmupIters { get; init; }
    /// <summary>Warm-up starts at lr × this factor.</summary>
    public double WarmupFactor { get; init; } = 0.001;
    /// <summary>Floor of the cosine and poly schedules.</summary>
    public double MinLr { get; init; }
}

/// <summary><c>train:</c> loop length and cadence.</summary>
public sealed record TrainLoopConfig
{
    /// <summary>Total optimizer steps.</summary>
    public int Iterations { get; init; } = 20000;
    /// <summary>Evaluate on the validation split every N iterations (and at the end); 0: only at the end.</summary>
    public int EvalEvery { get; init; } = 2000;
    /// <summary>Write <c>last.ckpt</c> every N iterations (and at the end).</summary>
    public int CheckpointEvery { get; init; } = 1000;
    /// <summary>Append a <c>train_log.csv</c> row every N iterations.</summary>
    public int LogEvery { get; init; } = 1;
    /// <summary>Seed of weights, data order and augmentation, and of the generated datasets unless <c>data.seed</c> is set.</summary>
    public int Seed { get; init; }
    /// <summary><c>auto</c>, <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c>.</summary>
    public string Device { get; init; } = "auto";
    /// <summary>CPU threads for torch (0: chosen from the usable cores and the load other processes put on them, see <see cref="Seg.Core.Native.TorchThreads"/>).</summary>
    public int Threads { get; init; }
    /// <summary>Clip the global gradient norm to this value (0: off).</summary>
    public double GradClip { get; init; }
    /// <summary>Micro-batches whose gradients are summed before each optimizer step; iterations and the schedule
    /// count optimizer steps, and a step sees <c>data.batch_size</c> × processes × this many samples.</summary>
    public int Accumulate { get; init; } = 1;
    /// <summary><c>fp32</c>, <c>bf16</c>, <c>fp16</c> (autocast for forward and loss; fp16 with loss scaling) or
    /// <c>auto</c> (bf16 where the device computes it natively, else fp32).</summary>
    public string Precision { get; init; } = "fp32";
    /// <summary>cuDNN autotuning of convolutions (null: on for CUDA); accepted and without effect on the CPU.</summary>
    public bool? CudnnBenchmark { get; init; }
    /// <summary>TF32 tensor cores for float32 cuDNN convolutions and cuBLAS matmuls (null: on for CUDA); accepted and
    /// without effect on the CPU.</summary>
    public bool? Tf32 { get; init; }
}

/// <summary><c>eval:</c> how validation and <c>eval</c> predict.</summary>
public sealed record EvalConfig
{
    /// <summary><c>whole</c> (one forward per image) or <c>slide</c> (overlapping windows).</summary>
    public string Mode { get; init; } = "whole";
    /// <summary>Sliding window [height, width].</summary>
    public IReadOnlyList<int> Window { get; init; } = [512, 512];
    /// <summary>Sliding stride [height, width]; default 2/3 of the window; at most the window (config error otherwise).</summary>
    public IReadOnlyList<int> Stride { get; init; } = [341, 341];
    /// <summary>Average with the horizontally flipped prediction.</summary>
    public bool Flip { get; init; }
    /// <summary>Multi-scale test: image scale factors whose softmax outputs are averaged.</summary>
    public IReadOnlyList<double> Scales { get; init; } = [1.0];
    /// <summary>Validation batch size (whole mode).</summary>
    public int BatchSize { get; init; } = 1;
    /// <summary>Sample overlays in the report.</summary>
    public int Samples { get; init; } = 6;
    /// <summary><c>eval.allow_nonfinite</c>: score pixels whose output is NaN or infinite (counted and reported) instead
    /// of stopping with <see cref="Evaluation.NonFiniteOutputException"/>.</summary>
    public bool AllowNonFinite { get; init; }
}
