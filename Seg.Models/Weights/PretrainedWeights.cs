using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using static TorchSharp.torch.nn;

namespace Seg.Models;

/// <summary>
/// What <c>model.pretrained</c> names: a local file, torchvision's ImageNet weights of the model's encoder
/// (<c>imagenet</c>), torchvision's COCO-with-VOC-labels weights of an FCN / DeepLabV3 / LR-ASPP model
/// (<c>coco_voc</c>), or any URL with its SHA-256.
/// </summary>
public sealed record PretrainedSource
{
    /// <summary>A local weight file.</summary>
    public string? Path { get; init; }

    /// <summary><c>imagenet</c> or <c>coco_voc</c>.</summary>
    public string? Kind { get; init; }

    /// <summary>A URL to download (with <see cref="Sha256"/>, or a torchvision-style hash prefix in its file name).</summary>
    public Uri? Url { get; init; }

    /// <summary>The file's full SHA-256 (hex); null to check the prefix in the file name instead.</summary>
    public string? Sha256 { get; init; }

    /// <summary><c>imagenet</c> / <c>coco_voc</c> as kinds, <c>http(s)://…</c> as a URL (with <paramref name="sha256"/>),
    /// anything else as a path.</summary>
    public static PretrainedSource Parse(string value, string? sha256 = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(value);
        if (value is PretrainedWeights.ImageNet or PretrainedWeights.CocoVoc) return new() { Kind = value };
        if (value.StartsWith("http://", StringComparison.OrdinalIgnoreCase) || value.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
            return new() { Url = new Uri(value), Sha256 = sha256 };
        return new() { Path = value };
    }
}

/// <summary>
/// Pretrained weights for <see cref="ModelFactory"/>'s models: torchvision's file names, downloads into a local cache
/// with a SHA-256 check, and loading into a model.
/// <list type="bullet">
/// <item>Files are cached in <c>$SEG_HOME/weights</c> (default <c>~/.cache/seg/weights</c>) under the URL's file name.</item>
/// <item>A download goes to a temporary file in that folder, with a progress bar; its SHA-256 is checked (the full hash
/// when given, else the hex digits after the last '-' of the name, as torch.hub does) before an atomic rename. A
/// mismatch is refused naming the URL and both hashes, and leaves nothing in the cache.</item>
/// <item>A cached file is hashed again before each use.</item>
/// <item><c>SEG_WEIGHTS_URL</c> replaces the base <c>https://download.pytorch.org/models</c> (mirrors, offline sites).</item>
/// </list>
/// </summary>
public static class PretrainedWeights
{
    /// <summary>The <c>model.pretrained</c> value for torchvision's ImageNet weights.</summary>
    public const string ImageNet = "imagenet";

    /// <summary>The <c>model.pretrained</c> value for torchvision's COCO (VOC classes) segmentation weights.</summary>
    public const string CocoVoc = "coco_voc";

    /// <summary>torchvision's download site.</summary>
    public const string DefaultBaseUrl = "https://download.pytorch.org/models";

    // torchvision 0.14's DEFAULT weights (models/*.py); the digits after '-' start the file's SHA-256.
    static readonly Dictionary<string, string> ImageNetFiles = new(StringComparer.OrdinalIgnoreCase)
    {
        ["resnet18"] = "resnet18-f37072fd.pth",
        ["resnet34"] = "resnet34-b627a593.pth",
        ["resnet50"] = "resnet50-11ad3fa6.pth",
        ["resnet101"] = "resnet101-cd907fc2.pth",
        ["resnext50_32x4d"] = "resnext50_32x4d-1a0047aa.pth",
        ["resnext101_32x8d"] = "resnext101_32x8d-110c445d.pth",
        ["mobilenet_v3_large"] = "mobilenet_v3_large-5c1a4163.pth",
        ["mobilenet_v3_small"] = "mobilenet_v3_small-047dcff4.pth",
        ["efficientnet_b0"] = "efficientnet_b0_rwightman-3dd342df.pth",
        ["efficientnet_b1"] = "efficientnet_b1-c27df63c.pth",
        ["efficientnet_b2"] = "efficientnet_b2_rwightman-bcdf34b7.pth",
        ["efficientnet_b3"] = "efficientnet_b3_rwightman-cf984f9c.pth",
        ["efficientnet_b4"] = "efficientnet_b4_rwightman-7eb33cd5.pth",
        ["convnext_tiny"] = "convnext_tiny-983f1562.pth",
        ["convnext_small"] = "convnext_small-0c510722.pth",
    };

    static readonly Dictionary<string, string> CocoVocFiles = new(StringComparer.OrdinalIgnoreCase)
    {
        ["fcn_resnet50"] = "fcn_resnet50_coco-1167a1af.pth",
        ["fcn_resnet101"] = "fcn_resnet101_coco-7ecb50ca.pth",
        ["deeplabv3_resnet50"] = "deeplabv3_resnet50_coco-cd0a2569.pth",
        ["deeplabv3_resnet101"] = "deeplabv3_resnet101_coco-586e9e4e.pth",
        ["deeplabv3_mobilenet_v3_large"] = "deeplabv3_mobilenet_v3_large-fc3c493d.pth",
        ["lraspp_mobilenet_v3_large"] = "lraspp_mobilenet_v3_large-d234d4ea.pth",
    };

    /// <summary>Classes of the <c>coco_voc</c> models (background and the 20 VOC classes).</summary>
    public const int CocoVocClasses = 21;

    /// <summary>The weight cache: <c>$SEG_HOME/weights</c>, else <c>~/.cache/seg/weights</c>.</summary>
    public static string CacheDirectory =>
        System.IO.Path.Combine(Environment.GetEnvironmentVariable("SEG_HOME") is { Length: > 0 } home ? home
            : System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "seg"), "weights");

    /// <summary>The download base: <c>SEG_WEIGHTS_URL</c>, else <see cref="DefaultBaseUrl"/>.</summary>
    public static string BaseUrl => Environment.GetEnvironmentVariable("SEG_WEIGHTS_URL") is { Length: > 0 } url ? url.TrimEnd('/') : DefaultBaseUrl;

    /// <summary>The torchvision encoder whose ImageNet weights <paramref name="modelName"/> starts from, or null (plain unet).</summary>
    public static string? EncoderOf(string modelName)
    {
        var name = modelName.ToLowerInvariant();
        foreach (var prefix in new[] { "unet_", "fpn_", "deeplabv3plus_", "deeplabv3_", "fcn_", "lraspp_" })
            if (name.StartsWith(prefix, StringComparison.Ordinal) && ImageNetFiles.ContainsKey(name[prefix.Length..])) return name[prefix.Length..];
        return ImageNetFiles.ContainsKey(name) ? name : null;
    }

    /// <summary>torchvision's file name for (<paramref name="modelName"/>, <paramref name="kind"/>), e.g.
    /// <c>resnet34-b627a593.pth</c>; null when torchvision has none.</summary>
    public static string? TorchvisionFile(string modelName, string kind) => kind switch
    {
        ImageNet => EncoderOf(modelName) is { } encoder ? ImageNetFiles[encoder] : null,
        CocoVoc => CocoVocFiles.GetValueOrDefault(modelName),
        _ => throw new ArgumentException($"Unknown pretrained kind '{kind}'; use {ImageNet} or {CocoVoc}.", nameof(kind)),
    };

    /// <summary>The kinds of pretrained weights torchvision has for <paramref name="modelName"/>.</summary>
    public static IReadOnlyList<string> Available(string modelName) =>
        new[] { ImageNet, CocoVoc }.Where(k => TorchvisionFile(modelName, k) is not null).ToArray();

    /// <summary>
    /// A verified local file for <paramref name="source"/>: the path itself (which must exist), or the cached
    /// download of the URL (kinds: <see cref="BaseUrl"/>/torchvision's file name for <paramref name="modelName"/>).
    /// </summary>
    /// <exception cref="ArgumentException">A kind torchvision has no weights for, for this model.</exception>
    /// <exception cref="InvalidDataException">A hash mismatch (download or cache), naming the URL or file and both hashes.</exception>
    /// <exception cref="IOException">The download failed; the one-line message names the URL and where to put the file by hand.</exception>
    public static string Resolve(string modelName, PretrainedSource source, HttpClient? client = null, TextWriter? progress = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (source.Path is { } path)
            return File.Exists(path) ? path : throw new FileNotFoundException($"Weight file not found: {path}", path);
        if (source.Url is { } url) return Download(url, source.Sha256, client, progress);
        var kind = source.Kind ?? throw new ArgumentException("The pretrained source names no path, URL or kind.", nameof(source));
        var file = TorchvisionFile(modelName, kind)
            ?? throw new ArgumentException($"torchvision has no '{kind}' weights for '{modelName}'" +
                (kind == CocoVoc ? $"; coco_voc exists for {string.Join(", ", CocoVocFiles.Keys)}." : "; imagenet exists for models whose encoder is one of " + string.Join(", ", ImageNetFiles.Keys) + "."));
        return Download(new Uri($"{BaseUrl}/{file}"), null, client, progress);
    }

    /// <summary>
    /// Downloads <paramref name="url"/> into <see cref="CacheDirectory"/> (or <paramref name="cacheDirectory"/>) unless
    /// a verified copy is there, and returns its path. The expected hash is <paramref name="sha256"/> (64 hex digits)
    /// or else the prefix in the file name (<c>name-&lt;hex&gt;.ext</c>).
    /// </summary>
    /// <exception cref="ArgumentException">No hash to check: neither <paramref name="sha256"/> nor a prefix in the name.</exception>
    /// <exception cref="InvalidDataException">A hash mismatch, naming the URL (or cached file) and both hashes.</exception>
    /// <exception cref="IOException">The download failed: one line naming the URL and the cache path to put the file at by hand.</exception>
    public static string Download(Uri url, string? sha256 = null, HttpClient? client = null, TextWriter? progress = null, string? cacheDirectory = null)
    {
        ArgumentNullException.ThrowIfNull(url);
        var fileName = System.IO.Path.GetFileName(url.AbsolutePath);
        if (fileName.Length == 0) throw new ArgumentException($"{url}: the URL names no file.", nameof(url));
        var expected = sha256?.Trim().ToLowerInvariant() ?? HashPrefix(fileName)
            ?? throw new ArgumentException($"{url}: no sha256 given and the file name carries no hash prefix (name-<hex>.ext); give sha256.", nameof(sha256));
        if (!Regex.IsMatch(expected, "^[0-9a-f]+$") || (sha256 is not null && expected.Length != 64))
            throw new ArgumentException($"{url}: '{sha256}' is not a SHA-256 (64 hex digits).", nameof(sha256));

        var folder = cacheDirectory ?? CacheDirectory;
        var target = System.IO.Path.Combine(folder, fileName);
        if (File.Exists(target))
        {
            var cached = Sha256Of(target);
            if (!cached.StartsWith(expected, StringComparison.Ordinal))
                throw new InvalidDataException($"{target}: cached weights do not match: expected SHA-256 {expected}, got {cached} (for {url}); delete the file to download it again.");
            return target;
        }

        Directory.CreateDirectory(folder);
        var temp = System.IO.Path.Combine(folder, $".{fileName}.{Guid.NewGuid():N}.partial");
        try
        {
            string actual = Fetch(url, temp, client, progress ?? Console.Error, target);
            if (!actual.StartsWith(expected, StringComparison.Ordinal))
                throw new InvalidDataException($"{url}: downloaded file does not match: expected SHA-256 {expected}, got {actual}; nothing was kept.");
            File.Move(temp, target, overwrite: false);
            return target;
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    // torch.hub's rule: the hex digits between the last '-' and the first '.' after it.
    static string? HashPrefix(string fileName) =>
        Regex.Match(fileName, @"-([a-f0-9]+)\.[^-]*$") is { Success: true } m ? m.Groups[1].Value : null;

    /// <summary>The lowercase hex SHA-256 of a file.</summary>
    public static string Sha256Of(string path)
    {
        using var f = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(f));
    }

    // Streams the body into temp, hashing as it goes; a progress bar on progress. Returns the hex SHA-256.
    static string Fetch(Uri url, string temp, HttpClient? client, TextWriter progress, string target)
    {
        var http = client ?? SharedClient.Value;
        try
        {
            using var response = http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead).GetAwaiter().GetResult();
            if (response.StatusCode != HttpStatusCode.OK)
                throw new IOException($"cannot download {url}: HTTP {(int)response.StatusCode} {response.ReasonPhrase}; put the file by hand at {target}");
            long? total = response.Content.Headers.ContentLength;
            using var body = response.Content.ReadAsStream();
            using var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write);
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buffer = new byte[1 << 16];
            long done = 0;
            var clock = Stopwatch.StartNew();
            int read;
            while ((read = body.Read(buffer)) > 0)
            {
                file.Write(buffer, 0, read);
                hash.AppendData(buffer, 0, read);
                done += read;
                if (clock.ElapsedMilliseconds >= 250) { ProgressBar(progress, url, done, total); clock.Restart(); }
            }
            ProgressBar(progress, url, done, total);
            progress.WriteLine();
            return Convert.ToHexStringLower(hash.GetHashAndReset());
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or System.Net.Sockets.SocketException)
        {
            throw new IOException($"cannot download {url} ({e.Message}); put the file by hand at {target}", e);
        }
    }

    static void ProgressBar(TextWriter w, Uri url, long done, long? total)
    {
        var name = System.IO.Path.GetFileName(url.AbsolutePath);
        if (total is > 0 and var t)
        {
            int width = 30, filled = (int)(width * done / t);
            w.Write($"\r{name} [{new string('#', filled)}{new string('.', width - filled)}] {100.0 * done / t,5:F1}% {done / 1048576.0:F1}/{t / 1048576.0:F1} MiB");
        }
        else w.Write($"\r{name} {done / 1048576.0:F1} MiB");
    }

    static readonly Lazy<HttpClient> SharedClient = new(() => new HttpClient { Timeout = TimeSpan.FromMinutes(30) });

    /// <summary>
    /// Loads pretrained weights into <paramref name="model"/> (built by <see cref="ModelFactory.Create"/> as
    /// <paramref name="modelName"/>) from <paramref name="source"/>, resolved by <see cref="Resolve"/>:
    /// <list type="bullet">
    /// <item><c>imagenet</c>: the encoder's torchvision ImageNet file into the encoder (every encoder key must load;
    /// the file's classifier is left over; a classifier model loads it whole, its classifier too when the class
    /// count is 1000).</item>
    /// <item><c>coco_voc</c>: the whole torchvision model; with another class count than 21 the class-dependent
    /// last layers keep their initialisation (reported as shape mismatches).</item>
    /// <item>A path or URL: as a whole-model state_dict (non-strict); when nothing of it fits and the model has an
    /// encoder, as encoder weights.</item>
    /// </list>
    /// </summary>
    /// <exception cref="InvalidDataException">The file does not fit (the message names the file and keys).</exception>
    public static LoadReport Load(Module model, string modelName, PretrainedSource source, HttpClient? client = null, TextWriter? progress = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        var path = Resolve(modelName, source, client, progress);
        switch (source.Kind)
        {
            case ImageNet when model is ISegmentationModel seg:
                // torchvision's MobileNetV3 segmentation backbones hold the blocks of `features` directly.
                var strip = modelName.StartsWith("deeplabv3_mobilenet", StringComparison.OrdinalIgnoreCase) || modelName.StartsWith("lraspp_", StringComparison.OrdinalIgnoreCase);
                return StateDict.LoadBackbone(model, path, seg.BackbonePrefix, strip ? "features." : null);
            case ImageNet:
            case CocoVoc:
                var report = StateDict.LoadInto(model, path, strict: false);
                if (report.Missing.Count > 0)
                    throw new InvalidDataException($"{path}: does not fit {modelName}: missing keys {string.Join(", ", report.Missing.Take(10))}{(report.Missing.Count > 10 ? $" and {report.Missing.Count - 10} more" : "")}.");
                return report;
            default:
                var whole = StateDict.LoadInto(model, path, strict: false);
                return whole.Loaded.Count == 0 && model is ISegmentationModel { BackbonePrefix: not null } ? StateDict.LoadBackbone(model, path) : whole;
        }
    }
}
