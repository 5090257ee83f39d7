using System.Collections;
using System.Globalization;

namespace Seg.Data.Transforms;

/// <summary>
/// Typed reading of a transform's config arguments. Values may come as numbers, numeric strings (YAML's untyped
/// scalars) or lists; every error names the transform, the key and the value, and unknown keys list the valid ones.
/// </summary>
public sealed class TransformArgs
{
    readonly string transform;
    readonly IReadOnlyDictionary<string, object?> args;

    /// <summary>Checks that <paramref name="args"/> only has keys from <paramref name="validKeys"/>.</summary>
    public TransformArgs(string transform, IReadOnlyDictionary<string, object?>? args, params string[] validKeys)
    {
        this.transform = transform;
        this.args = args ?? new Dictionary<string, object?>();
        foreach (var key in this.args.Keys)
            if (!validKeys.Contains(key))
                throw new ArgumentException(validKeys.Length == 0
                    ? $"transform '{transform}': unknown key '{key}'; it takes no arguments"
                    : $"transform '{transform}': unknown key '{key}'; valid keys: {string.Join(", ", validKeys)}");
    }

    /// <summary>A number, or <paramref name="fallback"/> when the key is absent.</summary>
    public double Number(string key, double fallback) =>
        args.TryGetValue(key, out var v) && v is not null ? ToNumber(key, v, "a number") : fallback;

    /// <summary>A probability in [0, 1].</summary>
    public double Probability(string key, double fallback)
    {
        double p = Number(key, fallback);
        return p is >= 0 and <= 1 ? p : throw Bad(key, p, "a probability in [0, 1]");
    }

    /// <summary>A [low, high] pair; a single number x means [-x, x] when <paramref name="symmetric"/>.</summary>
    public (double Low, double High) Range(string key, (double, double) fallback, bool symmetric = false)
    {
        if (!args.TryGetValue(key, out var v) || v is null) return fallback;
        var list = AsList(v);
        string expected = symmetric ? "a number x (for [-x, x]) or a [low, high] list" : "a [low, high] list of numbers";
        if (list is null)
            return symmetric ? (-Math.Abs(ToNumber(key, v, expected)), Math.Abs(ToNumber(key, v, expected))) : throw Bad(key, v, expected);
        if (list.Count != 2) throw Bad(key, v, expected);
        var (lo, hi) = (ToNumber(key, list[0], expected), ToNumber(key, list[1], expected));
        return lo <= hi ? (lo, hi) : throw Bad(key, v, $"{expected} with low <= high");
    }

    /// <summary>An image size: one integer for a square, or [height, width]; required.</summary>
    public (int Height, int Width) Size(string key)
    {
        const string expected = "a positive integer or a [height, width] list";
        if (!args.TryGetValue(key, out var v) || v is null) throw new ArgumentException($"transform '{transform}': key '{key}' is required ({expected})");
        var list = AsList(v);
        int ToSide(object? x) => ToNumber(key, x, expected) is var d && d >= 1 && d == Math.Floor(d) && d < 1e5 ? (int)d : throw Bad(key, v, expected);
        if (list is null) { int s = ToSide(v); return (s, s); }
        return list.Count == 2 ? (ToSide(list[0]), ToSide(list[1])) : throw Bad(key, v, expected);
    }

    /// <summary>Three numbers (per RGB channel), or <paramref name="fallback"/> when absent.</summary>
    public double[] Triple(string key, double[] fallback)
    {
        if (!args.TryGetValue(key, out var v) || v is null) return fallback;
        const string expected = "a list of 3 numbers (R, G, B)";
        var list = AsList(v);
        if (list is null || list.Count != 3) throw Bad(key, v, expected);
        return list.Cast<object?>().Select(x => ToNumber(key, x, expected)).ToArray();
    }

    /// <summary>An error naming the transform, the key and the value.</summary>
    public ArgumentException Bad(string key, object? value, string expected) =>
        new($"transform '{transform}': key '{key}' must be {expected}, got {Show(value)}");

    double ToNumber(string key, object? v, string expected) => v switch
    {
        double d when double.IsFinite(d) => d,
        float f when float.IsFinite(f) => f,
        int i => i,
        long l => l,
        decimal m => (double)m,
        string s when double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d) => d,
        _ => throw Bad(key, v, expected),
    };

    static IList? AsList(object? v) => v is IList list ? list : v is IEnumerable e and not string ? e.Cast<object?>().ToList() : null;

    static string Show(object? v) => v switch
    {
        null => "null",
        string s => $"'{s}'",
        IEnumerable e => "[" + string.Join(", ", e.Cast<object?>().Select(Show)) + "]",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => v.ToString() ?? "?",
    };
}
