namespace Seg.Bench;

/// <summary>Summary statistics for the side-by-side harnesses.</summary>
internal static class Stats
{
    public static double Median(IReadOnlyList<double> values)
    {
        var s = values.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }
}
