namespace Seg.Data;

/// <summary>
/// Deterministic seeds from tuples such as (seed, epoch, index): SplitMix64 finalisation of each part in turn, so
/// that neighbouring tuples give unrelated streams. Stable across runs and processes (unlike
/// <see cref="string.GetHashCode()"/>).
/// </summary>
public static class SeedMix
{
    /// <summary>Mixes the parts into one 32-bit seed for <see cref="Random(int)"/>.</summary>
    public static int Combine(params ReadOnlySpan<long> parts)
    {
        ulong h = 0x9E3779B97F4A7C15ul;
        foreach (var p in parts) h = Finalize(h ^ Finalize((ulong)p + 0x9E3779B97F4A7C15ul));
        return (int)(h ^ (h >> 32));
    }

    /// <summary>A stable 64-bit hash of a string (FNV-1a over UTF-16 code units).</summary>
    public static long Hash(string s)
    {
        ulong h = 14695981039346656037ul;
        foreach (char c in s) { h ^= c; h *= 1099511628211ul; }
        return (long)h;
    }

    static ulong Finalize(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ul;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBul;
        return z ^ (z >> 31);
    }
}
