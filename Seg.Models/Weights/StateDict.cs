using Seg.Models.Weights;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Seg.Models;

/// <summary>
/// Reads weight files and loads them into modules by parameter/buffer name.
/// <list type="bullet">
/// <item><c>.pth</c>/<c>.pt</c> written by <c>torch.save(model.state_dict(), f)</c> (PyTorch ≥ 1.6 zip format), read
/// with a restricted unpickler: only tensors, storages and (Ordered)dicts are understood, and a file naming any other
/// Python global is refused, so nothing in a file can run code. Checkpoints that wrap the state_dict under
/// <c>state_dict</c>, <c>model_state_dict</c> or <c>model</c> are unwrapped.</item>
/// <item><c>.safetensors</c>.</item>
/// <item>TorchSharp's own format (<c>Module.save</c>, usually <c>.dat</c>).</item>
/// </list>
/// The format is recognised from the file's first bytes (the extension only breaks the tie for safetensors).
/// </summary>
public static class StateDict
{
    /// <summary>All tensors of a weight file, by name, on the CPU. The caller owns (and disposes) them.</summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="InvalidDataException">Malformed or unsupported file; the message names the file and, where
    /// one is at fault, the tensor key.</exception>
    public static IReadOnlyDictionary<string, Tensor> Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"Weight file not found: {path}", path);
        Span<byte> head = stackalloc byte[9];
        int n;
        using (var f = File.OpenRead(path)) n = f.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        head = head[..n];

        if (head.StartsWith("PK\x03\x04"u8)) return PthReader.Read(path);
        if (head.Length >= 2 && head[0] == 0x80 && head[1] <= 5)
            throw new InvalidDataException($"{path}: legacy (pre-1.6, non-zip) torch.save format is not supported; re-save it with a newer PyTorch.");
        if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) || (head.Length == 9 && head[8] == (byte)'{'))
            return SafetensorsReader.Read(path);
        return TorchSharpDatReader.Read(path);
    }

    /// <summary>
    /// Reads one state dict in TorchSharp's <c>Module.save</c> format from <paramref name="stream"/>'s position (for
    /// formats that embed one, such as a checkpoint), checking dtype codes, shapes, names and sizes against the bytes
    /// left before any tensor is made; the stream is left after the section. The caller owns the tensors.
    /// </summary>
    /// <param name="stream">A seekable stream positioned at the section.</param>
    /// <param name="source">The file, named in error messages.</param>
    /// <exception cref="InvalidDataException">The section is malformed; the message names <paramref name="source"/>.</exception>
    public static IReadOnlyDictionary<string, Tensor> ReadTorchSharp(Stream stream, string source)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(source);
        return TorchSharpDatReader.ReadSection(stream, source, stream.Length);
    }

    /// <summary>
    /// Copies the file's tensors into <paramref name="module"/>'s parameters and buffers by name (on the module's
    /// devices, converting between floating-point dtypes).
    /// </summary>
    /// <param name="module">The model to fill.</param>
    /// <param name="path">A <c>.pth</c>/<c>.pt</c>, <c>.safetensors</c> or TorchSharp <c>.dat</c> file.</param>
    /// <param name="strict">True: every model key must be in the file with the same shape and every file key in the
    /// model, else nothing is loaded and an <see cref="InvalidDataException"/> names the file and the keys at fault.
    /// False: load the intersection of compatible keys and report the rest.</param>
    public static LoadReport LoadInto(Module module, string path, bool strict = true) =>
        LoadInto(module, path, strict, prefix: "");

    /// <summary>
    /// As <see cref="LoadInto(Module, string, bool)"/>, with each file key read as <paramref name="prefix"/> + key
    /// (e.g. <c>"backbone."</c> to load a torchvision resnet50 file into DeepLabV3's backbone).
    /// </summary>
    public static LoadReport LoadInto(Module module, string path, bool strict, string prefix)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(prefix);
        var file = Read(path);
        try
        {
            return LoadInto(module, file.ToDictionary(kv => prefix + kv.Key, kv => kv.Value), strict, path);
        }
        finally
        {
            foreach (var t in file.Values) t.Dispose();
        }
    }

    /// <summary>
    /// Loads a backbone-only file (for example torchvision's ImageNet <c>resnet50</c> state_dict) into the
    /// backbone of a segmentation model in one call: file keys are prefixed with the model's
    /// <see cref="ISegmentationModel.BackbonePrefix"/> (or <paramref name="prefix"/>), every model key under that
    /// prefix must be loaded (else an error names the file and keys), the file's extra keys (the ImageNet
    /// <c>fc.*</c>) are reported as unexpected and the head stays as initialised (reported as missing).
    /// </summary>
    /// <param name="model">The segmentation model whose backbone receives the weights.</param>
    /// <param name="path">The weight file (<c>.pth</c>, <c>.safetensors</c> or TorchSharp's format).</param>
    /// <param name="prefix">The backbone's key prefix in the model; null takes the model's own.</param>
    /// <param name="stripFromFileKeys">A prefix removed from the file's keys first (<c>features.</c> for torchvision's
    /// MobileNetV3 segmentation backbones, which hold the blocks directly); null keeps them.</param>
    public static LoadReport LoadBackbone(Module model, string path, string? prefix = null, string? stripFromFileKeys = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        prefix ??= (model as ISegmentationModel)?.BackbonePrefix
            ?? throw new ArgumentException($"{model.GetType().Name} has no pretrained backbone; pass a prefix explicitly.", nameof(model));
        var file = Read(path);
        LoadReport report;
        try
        {
            string Rename(string key) => stripFromFileKeys is not null && key.StartsWith(stripFromFileKeys, StringComparison.Ordinal) ? key[stripFromFileKeys.Length..] : key;
            report = LoadInto(model, file.ToDictionary(kv => prefix + Rename(kv.Key), kv => kv.Value), strict: false, path);
        }
        finally
        {
            foreach (var t in file.Values) t.Dispose();
        }
        var bad = report.ShapeMismatched.Where(m => m.Key.StartsWith(prefix, StringComparison.Ordinal)).Select(m => m.ToString())
            .Concat(report.Missing.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)).Select(k => $"{k} (missing)"))
            .Concat(report.DtypeMismatched.Where(m => m.Key.StartsWith(prefix, StringComparison.Ordinal)).Select(m => m.ToString()))
            .ToList();
        if (bad.Count > 0)
            throw new InvalidDataException($"{path}: does not fit the backbone '{prefix}' of {model.GetType().Name}: {Summarize(bad)}");
        return report;
    }

    /// <summary>Loads an in-memory state_dict (keys already in the model's naming); <paramref name="source"/> names it in messages.</summary>
    public static LoadReport LoadInto(Module module, IReadOnlyDictionary<string, Tensor> stateDict, bool strict, string source)
    {
        var target = module.state_dict();
        var loadable = new List<(string Key, Tensor Src, Tensor Dst)>();
        var missing = new List<string>();
        var shapes = new List<KeyMismatch>();
        var dtypes = new List<KeyMismatch>();
        foreach (var (key, dst) in target)
        {
            if (!stateDict.TryGetValue(key, out var src)) { missing.Add(key); continue; }
            if (!src.shape.SequenceEqual(dst.shape))
                shapes.Add(new KeyMismatch(key, Shape(src), Shape(dst)));
            else if (src.dtype != dst.dtype && !(src.is_floating_point() && dst.is_floating_point()))
                dtypes.Add(new KeyMismatch(key, src.dtype.ToString(), dst.dtype.ToString()));
            else
                loadable.Add((key, src, dst));
        }
        var unexpected = stateDict.Keys.Where(k => !target.ContainsKey(k)).ToList();

        if (strict && (missing.Count > 0 || unexpected.Count > 0 || shapes.Count > 0 || dtypes.Count > 0))
        {
            var problems = new List<string>();
            if (missing.Count > 0) problems.Add($"missing keys: {Summarize(missing)}");
            if (unexpected.Count > 0) problems.Add($"unexpected keys: {Summarize(unexpected)}");
            if (shapes.Count > 0) problems.Add($"shape mismatches: {Summarize(shapes.Select(s => s.ToString()).ToList())}");
            if (dtypes.Count > 0) problems.Add($"dtype mismatches: {Summarize(dtypes.Select(s => s.ToString()).ToList())}");
            throw new InvalidDataException($"{source}: does not match {module.GetType().Name} (strict load, nothing loaded); {string.Join("; ", problems)}.");
        }

        using (no_grad())
            foreach (var (_, src, dst) in loadable)
                dst.copy_(src);
        return new LoadReport(source, loadable.Select(l => l.Key).ToList(), missing, unexpected, shapes, dtypes);
    }

    static string Shape(Tensor t) => $"[{string.Join(", ", t.shape)}] {t.dtype}";

    static string Summarize(IReadOnlyList<string> items, int max = 10) =>
        string.Join(", ", items.Take(max)) + (items.Count > max ? $" and {items.Count - max} more" : "");
}
