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
        new DatFormat(),
        new PalettePngFormat(),
        new MaskFormat(Seg.Data.BadSampleMode.Error),
        new MaskFormat(Seg.Data.BadSampleMode.Skip),
        new ImageFormat(),
        new ImageHeaderFormat(),
        new OnnxFileFormat(),
        new IdxFormat("idx"),
        new IdxFormat("idx-gz"),
        new IdxFormat("idx-gz-raw"),
        new CheckpointFuzzFormat(),
        new RehashedCheckpointFuzzFormat(),
        new ConfigFuzzFormat(),
    ];

    /// <summary>The format called <paramref name="name"/>.</summary>
    public static IFuzzFormat Find(string name) =>
        All.FirstOrDefault(f => f.Name == name) ?? throw new ArgumentException($"no fuzz format '{name}'");

    /// <summary>A committed fixture's bytes (Seg.Tests/Fixtures/...).</summary>
    public static byte[] Fixture(params string[] parts) => File.ReadAllBytes(FixturePath(parts));

    /// <summary>A committed fixture's path in the test output.</summary>
    public static string FixturePath(params string[] parts) => Path.Combine([AppContext.BaseDirectory, "Fixtures", .. parts]);

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

    static readonly byte[] ZeroBlock = new byte[1 << 20];

    /// <summary>Writes <paramref name="count"/> zero bytes in 1 MiB blocks.</summary>
    public static void WriteZeros(Stream s, long count)
    {
        for (; count > 0; count -= ZeroBlock.Length) s.Write(ZeroBlock, 0, (int)Math.Min(count, ZeroBlock.Length));
    }

    static readonly Dictionary<(string, string, long), byte[]> Bombs = [];

    /// <summary>
    /// <paramref name="prefix"/> then <paramref name="zeros"/> zero bytes, compressed as <c>zlib</c> or <c>gzip</c>:
    /// a decompression bomb, made by streaming (no buffer of its expanded size) and cached for the run.
    /// </summary>
    public static byte[] Bomb(string kind, byte[] prefix, long zeros)
    {
        var key = (kind, Convert.ToHexString(prefix), zeros);
        lock (Bombs)
        {
            if (Bombs.TryGetValue(key, out var cached)) return cached;
            var ms = new MemoryStream();
            using (Stream z = kind == "gzip" ? new System.IO.Compression.GZipStream(ms, System.IO.Compression.CompressionLevel.Fastest, leaveOpen: true)
                       : new System.IO.Compression.ZLibStream(ms, System.IO.Compression.CompressionLevel.Fastest, leaveOpen: true))
            {
                z.Write(prefix);
                WriteZeros(z, zeros);
            }
            return Bombs[key] = ms.ToArray();
        }
    }

    /// <summary>A short hex digest of a string.</summary>
    public static string Hash(string s) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(s)))[..16];
}
