namespace Seg.Data;

/// <summary>
/// A sample (or a whole split) cannot be used: an unreadable or corrupt image, a missing mask, an image/mask size
/// mismatch, a label outside [0, C) that is not the ignore index, an empty split or a missing root.
/// The message names the file and the value at fault; <see cref="File"/> holds the path.
/// </summary>
/// <remarks>
/// Every dataset reader (images, masks, palette PNGs, IDX files) throws this for a file that is not what it claims
/// to be, and only this (issue 13). It cannot derive from <see cref="InvalidDataException"/>, which .NET seals; the
/// weight readers throw that one.
/// </remarks>
public sealed class BadSampleException(string file, string message, Exception? inner = null)
    : Exception($"{file}: {message}", inner)
{
    /// <summary>The file (or directory) at fault.</summary>
    public string File { get; } = file;
}
