using System.Reflection;
using System.Text;
using Seg.Core;
using Seg.Models;
using YamlDotNet.RepresentationModel;
using Seg.Platform.IO;

namespace Seg.Train.Config;

/// <summary>
/// Reads a <see cref="TrainConfig"/> from YAML, applies <c>--set key.path=value</c> overrides, and validates every
/// key before anything trains: an unknown key or a bad value throws <see cref="ConfigException"/> naming the key
/// path and the closest valid key.
/// </summary>
public static class ConfigLoader
{
    /// <summary>Manifest name of the embedded <c>configs/default.yaml</c>.</summary>
    public const string DefaultResourceName = "Seg.Train.default.yaml";

    /// <summary>Largest config accepted, in bytes (a config is a few KB; this bounds parse time and memory).</summary>
    public const int MaxBytes = 1 << 20;

    /// <summary>Deepest nesting of lists and mappings accepted (configs nest four levels).</summary>
    public const int MaxDepth = 32;

    /// <summary>Longest key accepted, in characters.</summary>
    public const int MaxKeyLength = 1024;

    /// <summary>The embedded default config's YAML text.</summary>
    public static string DefaultYaml()
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(DefaultResourceName)
            ?? throw new InvalidOperationException($"embedded resource {DefaultResourceName} is missing from Seg.Train.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    /// <summary>The embedded default config with overrides.</summary>
    public static TrainConfig LoadDefault(IEnumerable<string>? overrides = null) =>
        Parse(DefaultYaml(), "embedded default config", overrides);

    /// <summary>Reads <paramref name="path"/> and applies overrides.</summary>
    public static TrainConfig Load(string path, IEnumerable<string>? overrides = null) =>
        Parse(ReadText(path), path, overrides);

    /// <summary>The text of config file <paramref name="path"/>, reading at most <see cref="MaxBytes"/> bytes.</summary>
    /// <exception cref="ConfigException">The file is missing, unreadable or too large.</exception>
    public static string ReadText(string path)
    {
        if (!File.Exists(path)) throw new ConfigException(path, "(file)", "config file not found");
        try
        {
            FileChecks.RequireRegularFile(path, "config");   // a FIFO would block here for ever, /dev/zero never end
            using var stream = File.OpenRead(path);
            // Read one byte past the limit rather than trust the length: devices and pipes report none.
            var buffer = new byte[MaxBytes + 1];
            var n = stream.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
            if (n > MaxBytes) throw new ConfigException(path, "(file)", $"more than {MaxBytes} bytes; config files are limited to {MaxBytes} bytes");
            using var reader = new StreamReader(new MemoryStream(buffer, 0, n), Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
            var text = reader.ReadToEnd();
            // An empty file is more likely a mistake (truncated, the wrong file) than a wish for all defaults.
            if (YamlInput.Parse(text, path, "(yaml)") is null)
                throw new ConfigException(path, "(file)", "the config file is empty (or only comments); write {} in it for a config of all defaults");
            return text;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException(path, "(file)", $"cannot read the config file: {e.Message}");
        }
    }

    /// <summary>Parses YAML text (bounded: see <see cref="MaxBytes"/>, <see cref="MaxDepth"/>, <see cref="MaxKeyLength"/>;
    /// no anchors or aliases); <paramref name="source"/> names it in errors.</summary>
    /// <exception cref="ConfigException">Anything wrong with the text, a key or a value.</exception>
    public static TrainConfig Parse(string yaml, string source, IEnumerable<string>? overrides = null)
    {
        var origins = new Dictionary<YamlNode, string>(ReferenceEqualityComparer.Instance);
        var root = Tree(yaml, source, overrides, origins);
        try
        {
            return Bind(new ConfigSection(root, "", source, origins));
        }
        catch (Exception e) when (e is InvalidCastException or InvalidOperationException or ArgumentException or FormatException
                                      or OverflowException or KeyNotFoundException or IndexOutOfRangeException or NullReferenceException)
        {
            // Every expected problem is a ConfigException naming its key; this net keeps the contract for the rest.
            throw new ConfigException(source, "(config)", $"cannot read the config ({e.GetType().Name}: {e.Message})");
        }
    }

    /// <summary>The largest <c>data.size</c> and <c>data.crop_size</c> side: bounded before anything is allocated, so
    /// that a typo fails as a config error rather than as OpenCV's or libtorch's out-of-memory error.</summary>
    public const int MaxImageSide = 8192;

    /// <summary>The largest <c>data.train_count</c> and <c>data.val_count</c>.</summary>
    public const int MaxSampleCount = 10_000_000;

    /// <summary>
    /// The effective config as YAML: <paramref name="yaml"/> with <paramref name="overrides"/> applied, so that
    /// <c>Parse(EffectiveYaml(yaml, source, overrides), …)</c> gives the config that <c>Parse(yaml, source, overrides)</c>
    /// gives (comments and formatting are not kept). What <c>train</c> writes to <c>RUN/config.yaml</c>.
    /// </summary>
    /// <exception cref="ConfigException">As for <see cref="Parse"/>.</exception>
    public static string EffectiveYaml(string yaml, string source, IEnumerable<string>? overrides = null)
    {
        var root = Tree(yaml, source, overrides, new Dictionary<YamlNode, string>(ReferenceEqualityComparer.Instance));
        var text = new StringWriter { NewLine = "\n" };
        new YamlStream(new YamlDocument(root)).Save(text, assignAnchors: false);
        return text.ToString();
    }

    // The config's YAML tree with the overrides applied; origins hears which node each override set.
    static YamlMappingNode Tree(string yaml, string source, IEnumerable<string>? overrides, Dictionary<YamlNode, string> origins)
    {
        var root = YamlInput.Parse(yaml, source, "(yaml)") switch
        {
            null => new YamlMappingNode(),
            YamlMappingNode map => map,
            _ => throw new ConfigException(source, "(root)", "the config must be a mapping of sections (name, model, data, loss, ...)"),
        };
        foreach (var assignment in overrides ?? [])
            Override.Apply(root, assignment, origins);
        return root;
    }

    static TrainConfig Bind(ConfigSection root)
    {
        var config = new TrainConfig
        {
            Name = root.String("name", "run"),
            Model = BindModel(root.Section("model")),
            Data = BindData(root.Section("data")),
            Loss = BindLoss(root),
            Optimizer = BindOptimizer(root.Section("optimizer")),
            Schedule = BindSchedule(root.Section("schedule")),
            Train = BindTrain(root.Section("train")),
            Eval = BindEval(root.Section("eval")),
        };
        root.RejectUnknownKeys();
        if (config.Schedule.WarmupIters > config.Train.Iterations)
            throw new ConfigException(root.Source, "schedule.warmup_iters",
                $"{config.Schedule.WarmupIters} exceeds train.iterations ({config.Train.Iterations})");
        if (config.Data.SoftLabels is not null && !config.Loss.Any(t => LossTypes.Get(t.Type).TakesSoftLabels))
            throw new ConfigException(root.Source, "data.soft_labels",
                $"no loss term takes soft labels; add a term of type {string.Join(", ", LossTypes.All.Where(t => t.TakesSoftLabels).Select(t => t.Key))} or remove data.soft_labels");
        if (config.Data.TrainCount is { } trainCount && config.Data.BatchSize > trainCount)
            throw new ConfigException(root.Source, "data.batch_size",
                $"{config.Data.BatchSize} exceeds data.train_count ({trainCount}): training drops the last incomplete batch, so no step would run; " +
                "lower data.batch_size or raise data.train_count");
        if (NameProblem(config.Name) is { } problem)
            throw new ConfigException(root.Source, "name", $"'{config.Name}' {problem}: the run goes to runs/NAME, so name must be one plain folder name such as 'shapes_unet'");
        return config;
    }

    // A name that is not one plain path segment would put runs/NAME elsewhere: '..' is the working directory.
    static string? NameProblem(string name) =>
        name.Length == 0 ? "is empty"
        : name.Trim().Length != name.Length ? "starts or ends with white space"
        : name is "." or ".." ? "names a folder above or at runs/, not one inside it"
        : name.IndexOfAny(['/', '\\']) >= 0 ? "contains a path separator"
        : name.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0 ? "contains a character that no file name may hold"
        : null;

    static readonly TrainConfig Defaults = new();

    /// <summary>The <c>model:</c> key of each <see cref="ModelOptions"/> property the config sets.</summary>
    static readonly Dictionary<string, string> ModelKeys = new()
    {
        [nameof(ModelOptions.OutputStride)] = "output_stride",
        [nameof(ModelOptions.UnetDepth)] = "unet_depth",
        [nameof(ModelOptions.UnetBaseWidth)] = "unet_base_width",
    };

    static ModelConfig BindModel(ConfigSection s)
    {
        var head = s.Section("head");
        var (pretrained, sha256) = BindPretrained(s);
        var m = new ModelConfig
        {
            Name = s.String("name", "unet"),
            Pretrained = pretrained,
            PretrainedSha256 = sha256,
            AuxHead = s.Bool("aux_head", false),
            OutputStride = s.Int("output_stride", Defaults.Model.OutputStride),
            UnetDepth = s.Int("unet_depth", Defaults.Model.UnetDepth),
            UnetBaseWidth = s.Int("unet_base_width", Defaults.Model.UnetBaseWidth),
            UnetBilinear = s.Bool("unet_bilinear", Defaults.Model.UnetBilinear),
            AuxWeight = s.Double("aux_weight", 0.4, 0.0),
            SyncBn = s.Bool("sync_bn", false),
            Head = new HeadConfig
            {
                Type = head.Choice("type", "linear", "linear", "cosine"),
                Margin = head.Choice("margin", "none", "none", "am", "arcface"),
                Scale = head.Double("scale", 16.0, 1e-6),
                MarginValue = head.Double("margin_value", 0.2, 0.0, Math.PI),
                EmbeddingDim = head.Int("embedding_dim", 64, 1),
            },
        };
        // The ranges are the models' (ModelOptions.Problems); the config only names its own keys.
        foreach (var (property, problem) in m.ToModelOptions().Problems())
            throw s.Error(ModelKeys[property], problem);
        head.RejectUnknownKeys();
        s.RejectUnknownKeys();
        return m;
    }

    // model.pretrained: a scalar (path, imagenet, coco_voc, URL) or a mapping { url, sha256 }.
    static (string? Value, string? Sha256) BindPretrained(ConfigSection s)
    {
        if (!s.Has("pretrained")) return (null, null);
        try { return (s.OptionalString("pretrained"), null); }
        catch (ConfigException)
        {
            var p = s.Section("pretrained");
            var url = p.OptionalString("url") ?? throw p.Error("url", "missing: a pretrained mapping needs url (and sha256)");
            var sha256 = p.OptionalString("sha256");
            if (sha256 is not null && !System.Text.RegularExpressions.Regex.IsMatch(sha256, "^[0-9a-fA-F]{64}$"))
                throw p.Error("sha256", $"'{sha256}' is not a SHA-256 (64 hex digits)");
            p.RejectUnknownKeys();
            return (url, sha256);
        }
    }

    static DataConfig BindData(ConfigSection s)
    {
        var d = new DataConfig
        {
            Type = s.String("type", "shapes"),
            Root = s.OptionalString("root"),
            NumClasses = s.OptionalInt("num_classes", 1),
            IgnoreIndex = s.Long("ignore_index", 255),
            CropSize = s.IntList("crop_size", 2, max: MaxImageSide) ?? [512, 512],
            BatchSize = s.Int("batch_size", 8, 1),
            Workers = s.Int("workers", 2, 0, 256),
            OnBadSample = s.Choice("on_bad_sample", "error", "error", "skip"),
            TrainSplit = s.String("train_split", "train"),
            ValSplit = s.String("val_split", "val"),
            Size = s.Int("size", 128, 8, MaxImageSide),
            TrainCount = s.OptionalInt("train_count", 1, MaxSampleCount),
            ValCount = s.OptionalInt("val_count", 1, MaxSampleCount),
            Seed = s.OptionalInt("seed"),
            ClassNames = s.StringList("class_names"),
            Augment = BindTransforms(s, "augment"),
            ValTransforms = BindTransforms(s, "val_transforms"),
            SoftLabels = s.Has("soft_labels") ? BindSoftLabels(s.Section("soft_labels")) : null,
        };
        s.RejectUnknownKeys();
        return d;
    }

    static SoftLabelsConfig BindSoftLabels(ConfigSection s)
    {
        var c = new SoftLabelsConfig
        {
            Type = s.Choice("type", "boundary", "boundary"),
            Epsilon = s.Double("epsilon", 0.5, 0.0, 1.0),
            Kernel = s.Int("kernel", 3, 1, 255),
        };
        if (c.Kernel % 2 == 0) throw s.Error("kernel", $"{c.Kernel} must be odd, so that the window is centred on its pixel");
        s.RejectUnknownKeys();
        return c;
    }

    static IReadOnlyList<TransformConfig>? BindTransforms(ConfigSection s, string key) =>
        s.SectionList(key)?.Select(item =>
        {
            var type = item.OptionalString("type") ?? throw new ConfigException(item.Source, item.PathOf("type"), "missing: every transform needs a type");
            return new TransformConfig(type, item.Remaining());
        }).ToList();

    static IReadOnlyList<LossTermConfig> BindLoss(ConfigSection root)
    {
        var items = root.SectionList("loss");
        if (items is null) return [new LossTermConfig()];
        if (items.Count == 0) throw root.Error("loss", "expected at least one loss term");
        var terms = new List<LossTermConfig>();
        foreach (var s in items)
            terms.Add(BindLossTerm(s));
        var duplicate = terms.GroupBy(t => t.Name ?? t.Type).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
            throw root.Error("loss", $"two terms are named '{duplicate.Key}'; give one a distinct 'name'");
        return terms;
    }

    /// <summary>One term: the common keys, then the keys of its type (<see cref="LossTypes"/>); a key of another
    /// type is unknown here.</summary>
    static LossTermConfig BindLossTerm(ConfigSection s)
    {
        var type = LossTypes.Get(s.Choice("type", "cross_entropy", LossTypes.Keys));
        var term = new LossTermConfig
        {
            Type = type.Key,
            Weight = s.Double("weight", 1.0, 0.0),
            Start = s.Double("start", 0.0, 0.0, 1.0),
            End = s.Double("end", 1.0, 0.0, 1.0),
            Name = s.OptionalString("name"),
        };
        if (term.End <= term.Start) throw s.Error("end", $"end ({term.End}) must be greater than start ({term.Start})");
        term = term with { Options = type.Bind(s) };
        s.RejectUnknownKeys($"a '{type.Key}' term");
        return term;
    }

    static OptimizerConfig BindOptimizer(ConfigSection s)
    {
        var o = new OptimizerConfig
        {
            Type = s.Choice("type", "sgd", "sgd", "adamw"),
            Lr = s.Double("lr", 0.01, 0.0),
            Momentum = s.Double("momentum", 0.9, 0.0, 1.0),
            WeightDecay = s.Double("weight_decay", 0.0005, 0.0),
            Nesterov = s.Bool("nesterov", false),
            Betas = s.DoubleList("betas", 2, 0.0, 1.0) ?? [0.9, 0.999],
            Flat = s.Bool("flat", true),
        };
        s.RejectUnknownKeys();
        return o;
    }

    static ScheduleConfig BindSchedule(ConfigSection s)
    {
        var c = new ScheduleConfig
        {
            Type = s.Choice("type", "poly", "poly", "cosine", "constant"),
            Power = s.Double("power", 0.9, 0.0),
            WarmupIters = s.Int("warmup_iters", 0, 0),
            WarmupFactor = s.Double("warmup_factor", 0.001, 0.0, 1.0),
            MinLr = s.Double("min_lr", 0.0, 0.0),
        };
        s.RejectUnknownKeys();
        return c;
    }

    static TrainLoopConfig BindTrain(ConfigSection s)
    {
        var t = new TrainLoopConfig
        {
            Iterations = s.Int("iterations", 20000, 1),
            EvalEvery = s.Int("eval_every", 2000, 0),
            CheckpointEvery = s.Int("checkpoint_every", 1000, 1),
            LogEvery = s.Int("log_every", 1, 1),
            Seed = s.Int("seed", 0),
            Device = s.String("device", "auto"),
            Threads = s.Int("threads", 0, 0, 1024),
            GradClip = s.Double("grad_clip", 0.0, 0.0),
            Accumulate = s.Int("accumulate", 1, 1, 1024),
            Precision = s.Choice("precision", "fp32", Training.RunPrecision.Choices),
            CudnnBenchmark = s.OptionalString("cudnn_benchmark") is null ? null : s.Bool("cudnn_benchmark", true),
            Tf32 = s.OptionalString("tf32") is null ? null : s.Bool("tf32", true),
        };
        try { SegRuntime.ParseDevice(t.Device); }
        catch (DeviceNameException e)
        {
            throw s.Error("device", $"'{e.Name}' is not one of {string.Join(", ", DeviceNameException.Forms)} " +
                                    $"(closest valid value: '{ClosestKey.Find(e.Name, ["auto", "cpu", "cuda"])}')");
        }
        s.RejectUnknownKeys();
        return t;
    }

    static EvalConfig BindEval(ConfigSection s)
    {
        var window = s.IntList("window", 2) ?? [512, 512];
        var e = new EvalConfig
        {
            Mode = s.Choice("mode", "whole", "whole", "slide"),
            Window = window,
            Stride = s.IntList("stride", 2) ?? window.Select(w => Math.Max(1, w * 2 / 3)).ToList(),   // 341 for 512
            Flip = s.Bool("flip", false),
            Scales = s.DoubleList("scales", min: 0.05, max: 8.0) ?? [1.0],
            BatchSize = s.Int("batch_size", 1, 1),
            Samples = s.Int("samples", 6, 0, 64),
            AllowNonFinite = s.Bool("allow_nonfinite", false),
        };
        s.RejectUnknownKeys();
        // A stride beyond the window leaves pixels that no window covers: their logits would be 0/0 (NaN), scored as class 0.
        if (e.Stride[0] > e.Window[0] || e.Stride[1] > e.Window[1])
            throw s.Error("stride", $"[{e.Stride[0]}, {e.Stride[1]}] exceeds eval.window [{e.Window[0]}, {e.Window[1]}]: windows that far apart " +
                                    "leave pixels that no window covers; use a stride at most the window (e.g. 2/3 of it)");
        return e;
    }
}
