using YamlDotNet.RepresentationModel;

namespace Seg.Train.Config;

/// <summary>
/// Applies one <c>--set key.path=value</c> to a YAML tree before binding. Path segments name mapping keys;
/// a numeric segment indexes a list (<c>loss.1.start=0.5</c>). The value is parsed as YAML, so
/// <c>data.crop_size=[64,64]</c> sets a list. Keys that the binder does not know are then rejected as usual; since
/// <see cref="Apply"/> records which nodes each assignment wrote, such errors name the assignment
/// (<c>--set optimiser=adam</c>), not the config file and a line the user never wrote.
/// </summary>
public static class Override
{
    /// <summary>Sets the value named by <paramref name="assignment"/> in <paramref name="root"/>; every node it
    /// adds (keys, the value and what the value holds) is recorded in <paramref name="origins"/> with
    /// <see cref="Source"/> of the assignment.</summary>
    public static void Apply(YamlMappingNode root, string assignment, IDictionary<YamlNode, string>? origins = null)
    {
        var source = Source(assignment);
        var eq = assignment.IndexOf('=');
        if (eq <= 0)
            throw new ConfigException(source, "(assignment)", "expected key.path=value, e.g. --set optimizer.lr=0.01");
        var path = assignment[..eq].Trim();
        var value = YamlInput.Parse(assignment[(eq + 1)..], source, path, withLines: false) ?? new YamlScalarNode("");
        if (origins is not null)
            foreach (var node in value.AllNodes) origins[node] = source;
        void Added(YamlNode key)
        {
            if (origins is not null) origins[key] = source;
        }
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
                    if (!map.Children.ContainsKey(key)) Added(key);
                    if (last) { map.Children[key] = value; return; }
                    if (!map.Children.TryGetValue(key, out var child) || child is YamlScalarNode { Value: null or "" or "~" or "null" })
                        map.Children[key] = child = new YamlMappingNode();
                    current = child;
                    break;
                case YamlSequenceNode seq when int.TryParse(segment, out var index):
                    if (index < 0 || index >= seq.Children.Count)
                        throw new ConfigException(source, soFar, $"index {index} is out of range: the list has {seq.Children.Count} items");
                    if (last) { seq.Children[index] = value; return; }
                    current = seq.Children[index];
                    break;
                default:
                    throw new ConfigException(source, soFar, current is YamlSequenceNode
                        ? "this is a list: use a numeric index, e.g. loss.0.weight=1"
                        : "cannot set a key below a single value");
            }
        }
    }

    const int MaxShown = 80;

    /// <summary>How errors name an assignment: <c>--set key=value</c>, shortened to <see cref="MaxShown"/> characters.</summary>
    public static string Source(string assignment) =>
        "--set " + (assignment.Length <= MaxShown ? assignment : assignment[..MaxShown] + "...");
}
