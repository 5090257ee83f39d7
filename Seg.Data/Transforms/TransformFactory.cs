using Seg.Data.Transforms;

namespace Seg.Data;

/// <summary>Builds transforms by config name and arguments.</summary>
public static class TransformFactory
{
    static readonly Dictionary<string, (string[] Keys, Func<TransformArgs, ISegmentationTransform> Make)> Makers = new()
    {
        ["random_scale"] = (["range"], RandomScale.FromArgs),
        ["random_crop"] = (["size", "fill"], RandomCrop.FromArgs),
        ["horizontal_flip"] = (["p"], HorizontalFlip.FromArgs),
        ["random_rotate"] = (["degrees", "p", "fill"], RandomRotate.FromArgs),
        ["color_jitter"] = (["brightness", "contrast", "saturation", "hue", "p"], ColorJitter.FromArgs),
        ["gaussian_blur"] = (["kernel", "sigma", "p"], GaussianBlur.FromArgs),
        ["resize"] = (["size"], Resize.FromArgs),
        ["normalize"] = (["mean", "std"], Normalize.FromArgs),
    };

    /// <summary>The config names: random_scale, random_crop, horizontal_flip, random_rotate, color_jitter,
    /// gaussian_blur, resize, normalize.</summary>
    public static IReadOnlyList<string> Types { get; } = Makers.Keys.ToArray();

    /// <summary>The argument keys <paramref name="type"/> accepts.</summary>
    public static IReadOnlyList<string> KeysOf(string type) =>
        Makers.TryGetValue(type, out var m) ? m.Keys : throw UnknownType(type);

    /// <summary>Builds transform <paramref name="type"/> from <paramref name="args"/> (null or empty: defaults).</summary>
    /// <exception cref="ArgumentException">Unknown type (lists valid types), unknown key (lists valid keys), or a
    /// bad value (names key and value).</exception>
    public static ISegmentationTransform Create(string type, IReadOnlyDictionary<string, object?> args)
    {
        if (!Makers.TryGetValue(type, out var maker)) throw UnknownType(type);
        return maker.Make(new TransformArgs(type, args, maker.Keys));
    }

    static ArgumentException UnknownType(string type) =>
        new($"unknown transform type '{type}'; valid types: {string.Join(", ", Types)}");
}
