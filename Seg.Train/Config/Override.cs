using YamlDotNet.RepresentationModel;

namespace Seg.Train.Config;

/// <summary>
/// Applies one <c>--set key.path=value</c> to a YAML tree before binding. Path segments name mapping keys;
/// a numeric segment indexes a list (<c>loss.1.start=0.5</c>). The value is parsed as YAML, so
/// <c>data.crop_size=[64,64]</c> sets a list. Keys that the binder does not know are then rejected as usual.
/// </summary>
public static class Override
{
    /// <summary>Sets the value named by <paramref name="assignment"/> in <paramref name="root"/>.</summary>
    public static void Apply(YamlMappingNode root, string assignment)
    {
        var eq = assignment.IndexOf('=');
        if (eq <= 0)
            throw new ConfigException("--set", assignment, "expected key.path=value, e.g. --set optimizer.lr=0.01");
        var path = assignment[..eq].Trim();
        var value = ParseValue(assignment[(eq + 1)..], path);
        var segments = path.Split('.');
        YamlNode current = root;
        for (var i = 0; i < segments.Length; i++)
        {
            var last = i == segments.Length - 1;
            var segment = segments[i];
            var soFar = string.Join('.', segments.Take(i + 1));
            switch (current)
            {
                case YamlMappingNode map:
                    var key = new YamlScalarNode(segment);
                    if (last) { map.Children[key] = value; return; }
                    if (!map.Children.TryGetValue(key, out var child) || child is YamlScalarNode { Value: null or "" or "~" or "null" })
                        map.Children[key] = child = new YamlMappingNode();
                    current = child;
                    break;
                case YamlSequenceNode seq when int.TryParse(segment, out var index):
                    if (index < 0 || index >= seq.Children.Count)
                        throw new ConfigException("--set", soFar, $"index {index} is out of range: the list has {seq.Children.Count} items");
                    if (last) { seq.Children[index] = value; return; }
                    current = seq.Children[index];
                    break;
                default:
                    throw new ConfigException("--set", soFar, current is YamlSequenceNode
                        ? "this is a list: use a numeric index, e.g. loss.0.weight=1"
                        : "cannot set a key below a single value");
            }
        }
    }

    static YamlNode ParseValue(string text, string path) => YamlInput.Parse(text, "--set", path) ?? new YamlScalarNode("");
}
