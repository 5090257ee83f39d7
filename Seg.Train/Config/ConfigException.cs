namespace Seg.Train.Config;

/// <summary>A config key is unknown or has a bad value; the message names the source, the key path and a fix.</summary>
public sealed class ConfigException(string source, string keyPath, string problem)
    : Exception($"{source}: {keyPath}: {problem}")
{
    /// <summary>The file (or "--set", or "embedded default") the bad key came from.</summary>
    public string ConfigSource { get; } = source;
    /// <summary>Dotted key path, e.g. <c>optimizer.lr</c> or <c>loss[1].start</c>.</summary>
    public string KeyPath { get; } = keyPath;
}
