namespace Seg.Data;

/// <summary>
/// A sample (or a whole split) cannot be used: an unreadable or corrupt image, a missing mask, an image/mask size
/// mismatch, a label outside [0, C) that is not the ignore index, an empty split or a missing root.
/// The message names the file and the value at fault; <see cref="File"/> holds the path.
/// </summary>
public sealed class BadSampleException(string file, string message, Exception? inner = null)
    : Exception($"{file}: {message}", inner)
{
    /// <summary>The file (or directory) at fault.</summary>
    public string File { get; } = file;
}
