namespace Seg.Core.Losses;

/// <summary>
/// The one rule for the ignore index, shared by the losses, <see cref="Metrics.ConfusionMatrix"/> and the trainer's
/// config check: it must not be a class id, or the pixels of that class would silently drop out of the loss and the
/// scores.
/// </summary>
public static class IgnoreIndexRule
{
    /// <summary>Throws when <paramref name="ignoreIndex"/> is a class id of <paramref name="classCount"/> classes.</summary>
    /// <exception cref="ArgumentException">0 ≤ <paramref name="ignoreIndex"/> &lt; <paramref name="classCount"/>; the
    /// message (<see cref="Problem"/>) names both values.</exception>
    public static void Check(long? ignoreIndex, long classCount, string paramName = "ignoreIndex")
    {
        if (ignoreIndex is long i && Problem(i, classCount) is { } problem) throw new ArgumentException(problem, paramName);
    }

    /// <summary>Why <paramref name="ignoreIndex"/> cannot be used with <paramref name="classCount"/> classes, or null.</summary>
    public static string? Problem(long ignoreIndex, long classCount) =>
        ignoreIndex >= 0 && ignoreIndex < classCount
            ? $"the ignore index {ignoreIndex} is a class id of the {classCount} classes [0, {classCount - 1}]; it must lie outside them (e.g. 255 or -1)"
            : null;
}
