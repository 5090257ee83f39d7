namespace Seg.Models;

/// <summary>One key whose file entry does not fit the model: what the file has and what the model wants.</summary>
public sealed record KeyMismatch(string Key, string InFile, string InModel)
{
    /// <summary>For example <c>classifier.4.weight (file [21, 256, 1, 1], model [5, 256, 1, 1])</c>.</summary>
    public override string ToString() => $"{Key} (file {InFile}, model {InModel})";
}

/// <summary>
/// What <see cref="StateDict.LoadInto(TorchSharp.torch.nn.Module, string, bool)"/> did. Keys are the model's names
/// (after any prefix mapping). Floating-point entries of another float dtype (e.g. a float16 file into a float32
/// model) are converted and count as loaded; other dtype differences are <see cref="DtypeMismatched"/>.
/// </summary>
/// <param name="Source">The file read.</param>
/// <param name="Loaded">Model keys whose values were copied from the file.</param>
/// <param name="Missing">Model keys the file lacks (left as they were).</param>
/// <param name="Unexpected">File keys the model lacks (ignored).</param>
/// <param name="ShapeMismatched">Keys in both whose shapes differ (not loaded), e.g. a classifier with another class count.</param>
/// <param name="DtypeMismatched">Keys in both whose dtypes cannot be converted (not loaded).</param>
public sealed record LoadReport(
    string Source,
    IReadOnlyList<string> Loaded,
    IReadOnlyList<string> Missing,
    IReadOnlyList<string> Unexpected,
    IReadOnlyList<KeyMismatch> ShapeMismatched,
    IReadOnlyList<KeyMismatch> DtypeMismatched)
{
    /// <summary>Every model key loaded and every file key used.</summary>
    public bool IsExact => Missing.Count == 0 && Unexpected.Count == 0 && ShapeMismatched.Count == 0 && DtypeMismatched.Count == 0;

    /// <summary>One line: the file and how many keys fell in each group.</summary>
    public override string ToString() =>
        $"{Source}: {Loaded.Count} loaded, {Missing.Count} missing, {Unexpected.Count} unexpected, " +
        $"{ShapeMismatched.Count} shape-mismatched, {DtypeMismatched.Count} dtype-mismatched";
}
