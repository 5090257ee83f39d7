using System.Globalization;
using System.Text.Json;

namespace Seg.Onnx;

/// <summary>
/// What a Seg ONNX file says about itself in its <c>metadata_props</c>, so that a consumer needs nothing else:
/// class names, palette, input normalisation, model name, training iteration and the <c>eval</c> settings of its
/// training config. Values are JSON (lists) or plain text; <see cref="Keys"/> names them. <c>export</c> writes them
/// with <see cref="ToDictionary"/>; <see cref="OnnxSegmenter"/> reads them with <see cref="Parse"/>.
/// </summary>
public sealed record OnnxModelMetadata
{
    /// <summary>The metadata_props keys.</summary>
    public static class Keys
    {
        /// <summary>JSON list of class names, index order.</summary>
        public const string ClassNames = "class_names";
        /// <summary>JSON list of [R, G, B] (0–255), one per class.</summary>
        public const string Palette = "palette";
        /// <summary>JSON [R, G, B] channel means in 0–1 units; absent: pixels are only scaled to [0, 1].</summary>
        public const string NormalizationMean = "normalization_mean";
        /// <summary>JSON [R, G, B] channel standard deviations in 0–1 units.</summary>
        public const string NormalizationStd = "normalization_std";
        /// <summary>The <c>ModelFactory</c> name, e.g. <c>deeplabv3plus_resnet50</c>.</summary>
        public const string ModelName = "model_name";
        /// <summary>Training iterations done when the checkpoint was written.</summary>
        public const string Iteration = "iteration";
        /// <summary><c>whole</c> or <c>slide</c>.</summary>
        public const string EvalMode = "eval_mode";
        /// <summary>JSON [height, width] of the sliding window.</summary>
        public const string EvalWindow = "eval_window";
        /// <summary>JSON [height, width] of the sliding stride.</summary>
        public const string EvalStride = "eval_stride";
        /// <summary><c>true</c> or <c>false</c>: average with the flipped image.</summary>
        public const string EvalFlip = "eval_flip";
        /// <summary>A sentence for people reading the file: how to make the input.</summary>
        public const string Preprocessing = "preprocessing";
        /// <summary>SHA-256 (lower-case hex) of the serialised graph, weights included, as stored in the file
        /// (written by Seg's exporter; <see cref="OnnxSegmenter.Load"/> checks it).</summary>
        public const string GraphSha256 = "graph_sha256";

        /// <summary>Every key above.</summary>
        public static IReadOnlySet<string> All { get; } = new HashSet<string>(StringComparer.Ordinal)
        {
            ClassNames, Palette, NormalizationMean, NormalizationStd, ModelName, Iteration, EvalMode, EvalWindow, EvalStride,
            EvalFlip, Preprocessing, GraphSha256,
        };
    }

    /// <summary>The smallest standard deviation accepted: a quarter of one 8-bit level (1/255) is already a 1000-fold
    /// stretch of the input; below it the normalised pixels grow past any range a network was trained on.</summary>
    public const double MinStd = 1e-3;

    /// <summary>The largest standard deviation, and the largest mean in magnitude, accepted (0–1 units: pixels are in
    /// [0, 1]).</summary>
    public const double MaxNormalizationValue = 1e3;

    /// <summary>Class names, index order (empty when the file does not say).</summary>
    public IReadOnlyList<string> ClassNames { get; init; } = [];

    /// <summary>One RGB colour per class (empty when the file does not say).</summary>
    public IReadOnlyList<(byte R, byte G, byte B)> Palette { get; init; } = [];

    /// <summary>Channel means, RGB, 0–1; null when the input is the image scaled to [0, 1].</summary>
    public IReadOnlyList<double>? MeanRgb { get; init; }

    /// <summary>Channel standard deviations, RGB, 0–1; null with <see cref="MeanRgb"/>.</summary>
    public IReadOnlyList<double>? StdRgb { get; init; }

    /// <summary>The model's <c>ModelFactory</c> name.</summary>
    public string? ModelName { get; init; }

    /// <summary>Training iterations of the exported checkpoint.</summary>
    public long? Iteration { get; init; }

    /// <summary>The training config's <c>eval</c> settings (null when the file does not say).</summary>
    public OnnxInferenceSettings? Inference { get; init; }

    /// <summary>The SHA-256 of the graph the file declares (<see cref="Keys.GraphSha256"/>), or null. Not written by
    /// <see cref="ToDictionary"/>: the exporter computes it from the graph it writes.</summary>
    public string? GraphSha256 { get; init; }

    /// <summary>Number of classes the metadata declares (class names, else palette), or 0.</summary>
    public int DeclaredClasses => ClassNames.Count > 0 ? ClassNames.Count : Palette.Count;

    /// <summary>Checks the metadata against itself and against the model's class count: as many class names as
    /// colours, and as many of each as the model has classes.</summary>
    /// <param name="classes">The model's classes (its output channels), or 0 when the graph does not say.</param>
    /// <param name="source">The file, for error messages.</param>
    /// <exception cref="InvalidDataException">A count that disagrees (names the file, both counts and the keys).</exception>
    public void CheckClasses(long classes, string source)
    {
        if (classes > 0 && ClassNames.Count > 0 && ClassNames.Count != classes)
            throw new InvalidDataException($"{source}: the model outputs {classes} classes but metadata '{Keys.ClassNames}' has {ClassNames.Count} names.");
        if (classes > 0 && Palette.Count > 0 && Palette.Count != classes)
            throw new InvalidDataException($"{source}: the model outputs {classes} classes but metadata '{Keys.Palette}' has {Palette.Count} colours.");
        if (ClassNames.Count > 0 && Palette.Count > 0 && ClassNames.Count != Palette.Count)
            throw new InvalidDataException($"{source}: metadata '{Keys.ClassNames}' has {ClassNames.Count} names but '{Keys.Palette}' has {Palette.Count} colours; both need one per class.");
    }

    /// <summary>The metadata_props entries.</summary>
    public IReadOnlyDictionary<string, string> ToDictionary()
    {
        var props = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [Keys.ClassNames] = JsonSerializer.Serialize(ClassNames),
            [Keys.Palette] = JsonSerializer.Serialize(Palette.Select(c => new[] { c.R, c.G, c.B }.Select(v => (int)v))),
        };
        if (MeanRgb is not null && StdRgb is not null)
        {
            props[Keys.NormalizationMean] = JsonSerializer.Serialize(MeanRgb);
            props[Keys.NormalizationStd] = JsonSerializer.Serialize(StdRgb);
            props[Keys.Preprocessing] = "RGB planes of (pixel/255 - normalization_mean) / normalization_std, float32 [N,3,H,W]";
        }
        else props[Keys.Preprocessing] = "RGB planes of pixel/255, float32 [N,3,H,W]";
        if (ModelName is not null) props[Keys.ModelName] = ModelName;
        if (Iteration is { } iteration) props[Keys.Iteration] = iteration.ToString(CultureInfo.InvariantCulture);
        if (Inference is { } eval)
        {
            props[Keys.EvalMode] = eval.Slide ? "slide" : "whole";
            props[Keys.EvalWindow] = JsonSerializer.Serialize(new[] { eval.Window.Height, eval.Window.Width });
            props[Keys.EvalStride] = JsonSerializer.Serialize(new[] { eval.Stride.Height, eval.Stride.Width });
            props[Keys.EvalFlip] = eval.Flip ? "true" : "false";
        }
        return props;
    }

    /// <summary>Reads the entries that <see cref="ToDictionary"/> writes; absent ones stay empty or null.</summary>
    /// <param name="props">The file's metadata_props.</param>
    /// <param name="source">The file, for error messages.</param>
    /// <exception cref="InvalidDataException">A present entry that cannot be read (names the file and key).</exception>
    public static OnnxModelMetadata Parse(IReadOnlyDictionary<string, string> props, string source)
    {
        T? Read<T>(string key, Func<string, T> parse, string expected) where T : class
        {
            if (!props.TryGetValue(key, out var text)) return null;
            try { return parse(text); }
            catch (Exception e) when (e is JsonException or FormatException or OverflowException or ArgumentException)
            {
                throw new InvalidDataException($"{source}: metadata '{key}' should be {expected}, got '{Shorten(text)}'.", e);
            }
        }
        static T Json<T>(string text) => JsonSerializer.Deserialize<T>(text) ?? throw new FormatException("null");

        var classNames = Read(Keys.ClassNames, t => Json<string?[]>(t).Select(n => n ?? throw new FormatException("null name")).ToArray(), "a JSON list of class names (strings)") ?? [];
        var palette = Read(Keys.Palette, t => Json<int[]?[]>(t).Select(Colour).ToArray(), "a JSON list of [R, G, B] values 0-255") ?? [];
        var mean = Read(Keys.NormalizationMean, t => Triple(Json<double[]>(t), -MaxNormalizationValue, MaxNormalizationValue),
            $"a JSON list of 3 numbers in [{-MaxNormalizationValue}, {MaxNormalizationValue}]");
        var std = Read(Keys.NormalizationStd, t => Triple(Json<double[]>(t), MinStd, MaxNormalizationValue),
            $"a JSON list of 3 numbers in [{MinStd}, {MaxNormalizationValue}]");
        var graphSha256 = Read(Keys.GraphSha256, t => t.Length == 64 && t.All(char.IsAsciiHexDigitLower) ? t : throw new FormatException(), "64 lower-case hex digits");
        if ((mean is null) != (std is null))
            throw new InvalidDataException($"{source}: metadata has only one of '{Keys.NormalizationMean}' and '{Keys.NormalizationStd}'.");
        var iteration = Read(Keys.Iteration, t => (object)long.Parse(t, CultureInfo.InvariantCulture), "an integer");

        OnnxInferenceSettings? inference = null;
        if (props.TryGetValue(Keys.EvalMode, out var mode))
        {
            if (mode is not ("whole" or "slide"))
                throw new InvalidDataException($"{source}: metadata '{Keys.EvalMode}' should be 'whole' or 'slide', got '{Shorten(mode)}'.");
            var window = Read(Keys.EvalWindow, t => Pair(Json<int[]>(t)), "a JSON [height, width]");
            var stride = Read(Keys.EvalStride, t => Pair(Json<int[]>(t)), "a JSON [height, width]");
            var flip = Read(Keys.EvalFlip, t => t is "true" or "false" ? (object)(t == "true") : throw new FormatException(), "true or false");
            var defaults = OnnxInferenceSettings.WholeImage;
            inference = new OnnxInferenceSettings
            {
                Slide = mode == "slide",
                Window = window is null ? defaults.Window : (window[0], window[1]),
                Stride = stride is null ? defaults.Stride : (stride[0], stride[1]),
                Flip = flip is true,
            };
            try { inference.Validated(); }
            catch (ArgumentException e) { throw new InvalidDataException($"{source}: metadata '{Keys.EvalWindow}' and '{Keys.EvalStride}': {e.Message}.", e); }
        }
        return new OnnxModelMetadata
        {
            ClassNames = classNames,
            Palette = palette,
            MeanRgb = mean,
            StdRgb = std,
            ModelName = props.TryGetValue(Keys.ModelName, out var name) ? name : null,
            Iteration = (long?)iteration,
            Inference = inference,
            GraphSha256 = graphSha256,
        };
    }

    static (byte R, byte G, byte B) Colour(int[]? rgb) =>
        rgb is null ? throw new FormatException("null colour")
        : rgb.Length == 3 && rgb.All(v => v is >= 0 and <= 255) ? ((byte)rgb[0], (byte)rgb[1], (byte)rgb[2])
            : throw new FormatException($"[{string.Join(", ", rgb)}] is not an RGB colour");

    static double[] Triple(double[] values, double min, double max) =>
        values.Length == 3 && values.All(v => v >= min && v <= max) ? values
            : throw new FormatException($"[{string.Join(", ", values)}]");

    static int[] Pair(int[] values) =>
        values.Length == 2 ? values : throw new FormatException($"[{string.Join(", ", values)}]");

    static string Shorten(string text) => text.Length <= 80 ? text : text[..77] + "...";
}
