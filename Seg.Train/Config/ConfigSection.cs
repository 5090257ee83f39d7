using System.Globalization;
using YamlDotNet.RepresentationModel;

namespace Seg.Train.Config;

/// <summary>
/// Typed, path-aware reads from one YAML mapping. Every read records its key as valid, so that
/// <see cref="RejectUnknownKeys"/> can name a stray key together with the closest valid one. Errors name the
/// source, the full key path and the line; a key or value that a <c>--set</c> wrote is blamed on that
/// <c>--set</c> instead (see <see cref="Override"/>).
/// </summary>
public sealed class ConfigSection
{
    readonly YamlMappingNode? node;
    readonly HashSet<string> known = new(StringComparer.Ordinal);
    readonly IReadOnlyDictionary<YamlNode, string> origins;

    /// <summary>Wraps <paramref name="node"/> (null: an absent section, every key takes its default);
    /// <paramref name="origins"/> names the <c>--set</c> that wrote a node, by reference.</summary>
    public ConfigSection(YamlMappingNode? node, string path, string source, IReadOnlyDictionary<YamlNode, string>? origins = null)
    {
        this.node = node;
        Path = path;
        Source = source;
        this.origins = origins ?? new Dictionary<YamlNode, string>();
    }

    // The file and the line of the node at fault, or the --set that wrote the key or its value.
    ConfigException At(string key, YamlNode keyNode, YamlNode value, YamlNode atFault, string problem) =>
        origins.TryGetValue(value, out var set) || origins.TryGetValue(keyNode, out set)
            ? new ConfigException(set, PathOf(key), problem)
            : new ConfigException(Source, PathOf(key), $"{problem} (line {atFault.Start.Line})");

    /// <summary>Dotted path of this section ("" for the root).</summary>
    public string Path { get; }

    /// <summary>Where the YAML came from, for messages.</summary>
    public string Source { get; }

    /// <summary>The full path of <paramref name="key"/> in this section.</summary>
    public string PathOf(string key) => Path.Length == 0 ? key : $"{Path}.{key}";

    /// <summary>An error about <paramref name="key"/> in this section.</summary>
    public ConfigException Error(string key, string problem) =>
        Entry(key) is var (k, v) && Value(v) is { } value ? At(key, k, value, value, problem) : new ConfigException(Source, PathOf(key), problem);

    YamlNode? Find(string key) => Entry(key) is var (_, v) ? Value(v) : null;

    (YamlNode Key, YamlNode Value)? Entry(string key)
    {
        known.Add(key);
        if (node is null) return null;
        foreach (var (k, v) in node.Children)
            if (k is YamlScalarNode s && s.Value == key) return (k, v);
        return null;
    }

    static YamlNode? Value(YamlNode v) =>
        v is YamlScalarNode { Style: YamlDotNet.Core.ScalarStyle.Plain, Value: null or "" or "~" or "null" } ? null : v;

    /// <summary>True when the key is written (and not null).</summary>
    public bool Has(string key) => Find(key) is not null;

    /// <summary>True when the key holds a list (a YAML sequence).</summary>
    public bool IsList(string key) => Find(key) is YamlSequenceNode;

    /// <summary>A string value.</summary>
    public string String(string key, string fallback) => OptionalString(key) ?? fallback;

    /// <summary>A string value or null when absent.</summary>
    public string? OptionalString(string key) => Find(key) switch
    {
        null => null,
        YamlScalarNode s => s.Value,
        _ => throw Error(key, "expected a single value, got a list or mapping"),
    };

    /// <summary>One of <paramref name="allowed"/> (case-sensitive); a bad value names the closest allowed one.</summary>
    public string Choice(string key, string fallback, params string[] allowed)
    {
        var value = String(key, fallback);
        if (Array.IndexOf(allowed, value) >= 0) return value;
        throw Error(key, $"'{value}' is not one of {string.Join(", ", allowed)} (closest valid value: '{ClosestKey.Find(value, allowed)}')");
    }

    /// <summary>An integer in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public int Int(string key, int fallback, int min = int.MinValue, int max = int.MaxValue) =>
        OptionalInt(key, min, max) ?? fallback;

    /// <summary>An integer in range, or null when absent.</summary>
    public int? OptionalInt(string key, int min = int.MinValue, int max = int.MaxValue)
    {
        var text = OptionalString(key);
        if (text is null) return null;
        if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value))
            throw Error(key, $"expected an integer, got '{text}'");
        if (value < min || value > max) throw Error(key, $"{value} is out of range [{min}, {max}]");
        return value;
    }

    /// <summary>A 64-bit integer.</summary>
    public long Long(string key, long fallback)
    {
        var text = OptionalString(key);
        if (text is null) return fallback;
        if (!long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value))
            throw Error(key, $"expected an integer, got '{text}'");
        return value;
    }

    /// <summary>A finite number in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public double Double(string key, double fallback, double min = double.MinValue, double max = double.MaxValue)
    {
        var text = OptionalString(key);
        if (text is null) return fallback;
        return ParseDouble(key, text, min, max);
    }

    double ParseDouble(string key, string text, double min, double max)
    {
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || !double.IsFinite(value))
            throw Error(key, $"expected a number, got '{text}'");
        if (value < min || value > max) throw Error(key, $"{value.ToString(CultureInfo.InvariantCulture)} is out of range [{min.ToString(CultureInfo.InvariantCulture)}, {max.ToString(CultureInfo.InvariantCulture)}]");
        return value;
    }

    /// <summary>A boolean (true/false, yes/no, on/off).</summary>
    public bool Bool(string key, bool fallback)
    {
        var text = OptionalString(key);
        return text?.ToLowerInvariant() switch
        {
            null => fallback,
            "true" or "yes" or "on" => true,
            "false" or "no" or "off" => false,
            _ => throw Error(key, $"expected true or false, got '{text}'"),
        };
    }

    /// <summary>A list of numbers (a single number counts as a list of one when <paramref name="count"/> allows).</summary>
    public IReadOnlyList<double>? DoubleList(string key, int? count = null, double min = double.MinValue, double max = double.MaxValue)
    {
        var items = Items(key);
        if (items is null) return null;
        var values = items.Select(t => ParseDouble(key, t, min, max)).ToList();
        CheckCount(key, values.Count, count);
        return values;
    }

    /// <summary>A list of positive integers; a single integer n means [n, n] when <paramref name="count"/> is 2.</summary>
    public IReadOnlyList<int>? IntList(string key, int? count = null, int min = 1, int max = int.MaxValue)
    {
        var items = Items(key);
        if (items is null) return null;
        var values = new List<int>();
        foreach (var t in items)
        {
            if (!int.TryParse(t, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v))
                throw Error(key, $"expected integers, got '{t}'");
            if (v < min) throw Error(key, $"{v} is below the minimum {min}");
            if (v > max) throw Error(key, $"{v} is above the maximum {max}");
            values.Add(v);
        }
        if (values.Count == 1 && count is > 1) values = Enumerable.Repeat(values[0], count.Value).ToList();
        CheckCount(key, values.Count, count);
        return values;
    }

    void CheckCount(string key, int actual, int? count)
    {
        if (count is { } n && actual != n) throw Error(key, $"expected {n} values, got {actual}");
        if (actual == 0) throw Error(key, "expected at least one value");
    }

    List<string>? Items(string key) => Find(key) switch
    {
        null => null,
        YamlScalarNode s => [s.Value ?? ""],
        YamlSequenceNode seq => seq.Children.Select(c => c is YamlScalarNode s ? s.Value ?? ""
            : throw Error(key, "expected a list of values, found a nested list or mapping")).ToList(),
        _ => throw Error(key, "expected a list of values, got a mapping"),
    };

    /// <summary>A list of strings; null when absent.</summary>
    public IReadOnlyList<string>? StringList(string key) => Items(key);

    /// <summary>A nested mapping (absent: an empty section, all defaults).</summary>
    public ConfigSection Section(string key) => Find(key) switch
    {
        null => new ConfigSection(null, PathOf(key), Source, origins),
        YamlMappingNode m => new ConfigSection(m, PathOf(key), Source, origins),
        _ => throw Error(key, "expected a mapping of keys"),
    };

    /// <summary>A list of mappings, each item's path written <c>key[i]</c>; null when absent.</summary>
    public IReadOnlyList<ConfigSection>? SectionList(string key) => Find(key) switch
    {
        null => null,
        YamlSequenceNode seq => seq.Children.Select((c, i) => c is YamlMappingNode m
            ? new ConfigSection(m, $"{PathOf(key)}[{i}]", Source, origins)
            : throw Error(key, $"item {i} must be a mapping, e.g. {{ type: ..., weight: ... }}")).ToList(),
        _ => throw Error(key, "expected a list of mappings"),
    };

    /// <summary>All keys not yet read, as plain .NET values (for argument bags such as transform arguments).</summary>
    public IReadOnlyDictionary<string, object?> Remaining()
    {
        var result = new Dictionary<string, object?>(StringComparer.Ordinal);
        if (node is null) return result;
        foreach (var (k, v) in node.Children)
        {
            var key = (k as YamlScalarNode)?.Value ?? throw new ConfigException(Source, Path, $"line {k.Start.Line}: a key must be a plain name, not a list or mapping");
            if (known.Contains(key)) continue;
            known.Add(key);
            result[key] = ToObject(v);
        }
        return result;
    }

    /// <summary>A YAML node as long, double, bool, string, null, List or Dictionary.</summary>
    public static object? ToObject(YamlNode node) => node switch
    {
        YamlScalarNode { Value: null or "~" or "null" } => null,
        YamlScalarNode s when long.TryParse(s.Value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var l) => l,
        YamlScalarNode s when double.TryParse(s.Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => d,
        YamlScalarNode s when s.Value is "true" or "false" => s.Value == "true",
        YamlScalarNode s => s.Value,
        YamlSequenceNode seq => seq.Children.Select(ToObject).ToList(),
        // Keys are plain names (YamlInput checks), so the text of any other key cannot collide with one.
        YamlMappingNode m => m.Children.ToDictionary(kv => (kv.Key as YamlScalarNode)?.Value ?? kv.Key.ToString(), kv => ToObject(kv.Value)),
        _ => null,
    };

    /// <summary>Throws for the first key that no read asked for, naming the closest valid key (and
    /// <paramref name="owner"/>, e.g. "a 'dice' term", where the valid keys depend on it).</summary>
    public void RejectUnknownKeys(string? owner = null)
    {
        if (node is null) return;
        foreach (var (k, v) in node.Children)
        {
            var key = (k as YamlScalarNode)?.Value ?? k.ToString();
            if (known.Contains(key)) continue;
            var closest = ClosestKey.Find(key, known);
            throw At(key, k, v, k, $"unknown key{(owner is null ? "" : $" for {owner}")}; closest valid key: '{(closest is null ? "(none)" : PathOf(closest))}'");
        }
    }
}
