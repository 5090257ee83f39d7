using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Seg.Core.Distributed;
using Seg.Train.Config;

namespace Seg.Train.Distributed;

/// <summary>
/// Checks at start that every rank parsed the same config: each rank hashes its config flattened to
/// <c>key.path=value</c> lines (SHA-256), rank 0's hash is broadcast, and if any rank's differs, every rank stops
/// with an error naming the first key (in rank 0's order) whose value differs and the values on both sides. A job
/// whose ranks read different files (a config edited while the job started, a node with another copy) would
/// otherwise train on silently mixed recipes.
/// </summary>
public static class ConfigAgreement
{
    /// <summary>Compares <paramref name="config"/> over <paramref name="group"/> (a collective).</summary>
    /// <exception cref="DistributedException">The ranks' configs differ.</exception>
    public static void Check(ProcessGroup group, TrainConfig config)
    {
        if (group.Size == 1) return;
        var lines = Flatten(config);
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(string.Join('\n', lines)));
        var reference = group.Broadcast(group.IsMain ? hash : null);
        long[] differs = [reference.AsSpan().SequenceEqual(hash) ? 0 : 1];
        group.AllReduce<long>(differs);
        if (differs[0] == 0) return;

        // Rare path: find the first differing key of each rank against rank 0's lines, then tell everyone.
        var mainLines = Encoding.UTF8.GetString(group.Broadcast(group.IsMain ? Encoding.UTF8.GetBytes(string.Join('\n', lines)) : null)).Split('\n');
        var first = FirstDifference(mainLines, lines);
        var reports = group.AllGather(Encoding.UTF8.GetBytes(first ?? ""));
        var (rank, text) = reports.Select((r, i) => (i, Encoding.UTF8.GetString(r))).First(r => r.Item2.Length > 0);
        throw new DistributedException($"the config differs between ranks (a SHA-256 of each rank's config is compared at start): {text} on rank {rank}; start every rank with the same config and --set overrides");
    }

    /// <summary>The config as sorted-by-position <c>key.path=value</c> lines (snake_case keys, as in YAML).</summary>
    public static IReadOnlyList<string> Flatten(TrainConfig config)
    {
        var options = new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
        var node = JsonSerializer.SerializeToNode(config, options);
        var lines = new List<string>();
        Walk(node, "", lines);
        return lines;
    }

    static void Walk(JsonNode? node, string path, List<string> lines)
    {
        switch (node)
        {
            case JsonObject o:
                foreach (var (key, child) in o) Walk(child, path.Length == 0 ? key : $"{path}.{key}", lines);
                break;
            case JsonArray a:
                for (var i = 0; i < a.Count; i++) Walk(a[i], $"{path}[{i}]", lines);
                if (a.Count == 0) lines.Add($"{path}=[]");
                break;
            default:
                lines.Add($"{path}={node?.ToJsonString() ?? "null"}");
                break;
        }
    }

    // "key: rank 0 has X, this rank Y", or null when the lines agree.
    static string? FirstDifference(IReadOnlyList<string> main, IReadOnlyList<string> mine)
    {
        static (string Key, string Value) Split(string line) { var i = line.IndexOf('='); return (line[..i], line[(i + 1)..]); }
        var mineByKey = mine.Select(Split).GroupBy(p => p.Key).ToDictionary(g => g.Key, g => g.First().Value);
        foreach (var (key, value) in main.Where(l => l.Contains('=')).Select(Split))
        {
            if (!mineByKey.TryGetValue(key, out var other)) return $"key {key} is {value} on rank 0 but absent";
            if (other != value) return $"key {key} is {value} on rank 0 but {other}";
        }
        var mainKeys = main.Where(l => l.Contains('=')).Select(l => Split(l).Key).ToHashSet();
        var extra = mine.Select(Split).FirstOrDefault(p => !mainKeys.Contains(p.Key));
        return extra.Key is null ? null : $"key {extra.Key} is {extra.Value} but absent on rank 0";
    }
}
