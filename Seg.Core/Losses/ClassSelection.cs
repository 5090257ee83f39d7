namespace Seg.Core.Losses;

/// <summary>
/// Which classes a Lovász-Softmax loss averages over, as in Berman's reference implementation:
/// <see cref="Present"/> (the default, also <c>default(ClassSelection)</c>) averages over the classes that have at
/// least one non-ignored pixel in the set (the batch, or the image in per-image mode); <see cref="All"/> averages
/// over every class (an absent class contributes its largest error); <see cref="Only"/> averages over exactly the
/// given classes, present or not.
/// </summary>
public readonly record struct ClassSelection
{
    enum SelectionKind { Present, All, Only }

    readonly SelectionKind kind;
    readonly long[]? ids;

    ClassSelection(SelectionKind kind, long[]? ids)
    {
        this.kind = kind;
        this.ids = ids;
    }

    /// <summary>Classes with at least one non-ignored pixel in the set (the default).</summary>
    public static ClassSelection Present { get; } = default;

    /// <summary>Every class of the input.</summary>
    public static ClassSelection All { get; } = new(SelectionKind.All, null);

    /// <summary>Exactly the given class ids (distinct, non-negative), present or not.</summary>
    /// <exception cref="ArgumentException">No ids, a negative id or a repeated id.</exception>
    public static ClassSelection Only(params long[] classIds)
    {
        ArgumentNullException.ThrowIfNull(classIds);
        if (classIds.Length == 0)
            throw new ArgumentException("ClassSelection.Only needs at least one class id.", nameof(classIds));
        if (classIds.Any(id => id < 0))
            throw new ArgumentException($"ClassSelection.Only got a negative class id: [{string.Join(",", classIds)}].", nameof(classIds));
        if (classIds.Distinct().Count() != classIds.Length)
            throw new ArgumentException($"ClassSelection.Only got a repeated class id: [{string.Join(",", classIds)}].", nameof(classIds));
        return new(SelectionKind.Only, (long[])classIds.Clone());
    }

    /// <summary>True for <see cref="Present"/>: classes absent from the set are skipped.</summary>
    public bool IsPresent => kind == SelectionKind.Present;

    /// <summary>True for <see cref="All"/>.</summary>
    public bool IsAll => kind == SelectionKind.All;

    /// <summary>The ids given to <see cref="Only"/>; null for <see cref="Present"/> and <see cref="All"/>.</summary>
    public IReadOnlyList<long>? ClassIds => ids;

    /// <inheritdoc/>
    public bool Equals(ClassSelection other) =>
        kind == other.kind && (ids is null ? other.ids is null : other.ids is not null && ids.SequenceEqual(other.ids));

    /// <inheritdoc/>
    public override int GetHashCode() =>
        ids is null ? kind.GetHashCode() : ids.Aggregate(kind.GetHashCode(), HashCode.Combine);

    /// <inheritdoc/>
    public override string ToString() => kind switch
    {
        SelectionKind.Present => "Present",
        SelectionKind.All => "All",
        _ => $"Only({string.Join(",", ids!)})",
    };
}
