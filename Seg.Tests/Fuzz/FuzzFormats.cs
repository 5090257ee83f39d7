using System.Security.Cryptography;
using System.Text;
using static TorchSharp.torch;

namespace Seg.Tests.Fuzz;

/// <summary>Every fuzzed format, and helpers the formats share.</summary>
public static class FuzzFormats
{
    /// <summary>The registry: add a new <see cref="IFuzzFormat"/> here and both fuzz tests pick it up.</summary>
    public static readonly IReadOnlyList<IFuzzFormat> All =
    [
        new SafetensorsFormat(),
        new PthFormat(),
        new PthPickleFormat(),
        new CheckpointFuzzFormat(),
        new RehashedCheckpointFuzzFormat(),
        new ConfigFuzzFormat(),
    ];

    /// <summary>The format called <paramref name="name"/>.</summary>
    public static IFuzzFormat Find(string name) =>
        All.FirstOrDefault(f => f.Name == name) ?? throw new ArgumentException($"no fuzz format '{name}'");

    /// <summary>A committed fixture's bytes (Seg.Tests/Fixtures/...).</summary>
    public static byte[] Fixture(params string[] parts) =>
        File.ReadAllBytes(Path.Combine([AppContext.BaseDirectory, "Fixtures", .. parts]));

    /// <summary>A digest of a state dict (names, dtypes, shapes, bytes), disposing its tensors.</summary>
    public static string Digest(IReadOnlyDictionary<string, Tensor> tensors)
    {
        var sb = new StringBuilder();
        try
        {
            foreach (var key in tensors.Keys.Order(StringComparer.Ordinal))
            {
                var t = tensors[key];
                using var c = t.contiguous();
                sb.Append(key).Append(':').Append(t.dtype).Append('[').AppendJoin(',', t.shape).Append("]=")
                  .Append(Convert.ToHexString(SHA256.HashData(c.bytes))).Append(';');
            }
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
        return Hash(sb.ToString());
    }

    /// <summary>A short hex digest of a string.</summary>
    public static string Hash(string s) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(s)))[..16];
}
