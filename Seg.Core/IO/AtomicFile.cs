using System.Text;
using Seg.Platform.IO;

namespace Seg.Core.IO;

/// <summary>
/// Writes files the one safe way: into a new temporary file next to the target (created exclusively, so that it
/// cannot be a planted link), flushed to disk, then renamed over the target. A kill or a full disk at any moment
/// leaves the old file or the new one, never a torn one, and a write never goes through a symbolic link or into a
/// device: a target that exists and is not a regular file is refused (<see cref="FileChecks.RequireWritableFile"/>).
/// </summary>
public static class AtomicFile
{
    /// <summary>The suffix of the temporary files (<c>.NAME.PID.RANDOM.tmp</c>), for <see cref="RemoveTemporaries"/>.</summary>
    public const string TempSuffix = ".tmp";

    /// <summary>Writes <paramref name="path"/> with <paramref name="write"/>, atomically; the folder is created when missing.</summary>
    /// <param name="path">The target file.</param>
    /// <param name="write">Fills the temporary file's stream.</param>
    /// <param name="what">What the file is, for messages (default: the path).</param>
    /// <exception cref="IOException">The target is not a regular file, or the write failed (no temporary file is left;
    /// the previous file, if any, is intact).</exception>
    public static void Write(string path, Action<Stream> write, string? what = null)
    {
        var full = Path.GetFullPath(path);
        FileChecks.RequireWritableFile(full, what ?? full);
        var dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        var temp = TempPath(full);
        try
        {
            // CreateNew is O_CREAT|O_EXCL: it fails on anything already there, a link included.
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1 << 16))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    /// <summary>Writes <paramref name="bytes"/> to <paramref name="path"/> atomically.</summary>
    public static void WriteAllBytes(string path, byte[] bytes, string? what = null) => Write(path, s => s.Write(bytes), what);

    /// <summary>Writes <paramref name="text"/> as UTF-8 (no byte-order mark) to <paramref name="path"/> atomically.</summary>
    public static void WriteAllText(string path, string text, string? what = null) =>
        WriteAllBytes(path, new UTF8Encoding(false).GetBytes(text), what);

    /// <summary>Writes <paramref name="lines"/>, each ended by a newline, to <paramref name="path"/> atomically.</summary>
    public static void WriteAllLines(string path, IEnumerable<string> lines, string? what = null) =>
        WriteAllText(path, string.Concat(lines.Select(l => l + "\n")), what);

    /// <summary>
    /// Creates <paramref name="path"/> atomically with <paramref name="initial"/> and returns a stream open on the new
    /// file, positioned at its end, for appending: the stream was opened on the temporary file before the rename,
    /// so it writes into the file that was created, whatever is later put at the path.
    /// </summary>
    public static FileStream CreateForAppend(string path, byte[] initial, string? what = null)
    {
        var full = Path.GetFullPath(path);
        FileChecks.RequireWritableFile(full, what ?? full);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var temp = TempPath(full);
        var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.Read);
        try
        {
            stream.Write(initial);
            stream.Flush(flushToDisk: true);
            File.Move(temp, full, overwrite: true);
            return stream;
        }
        catch
        {
            stream.Dispose();
            TryDelete(temp);
            throw;
        }
    }

    /// <summary>
    /// Creates <paramref name="path"/> as an empty file unless something is there already (then returns false),
    /// through a temporary file and a rename that does not replace: two processes racing create one file, and an
    /// existing link is left alone rather than followed.
    /// </summary>
    public static bool CreateEmptyIfMissing(string path)
    {
        var full = Path.GetFullPath(path);
        if (FileChecks.KindOf(full, followLinks: false) != PathKind.Missing) return false;
        var temp = TempPath(full);
        new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None).Dispose();
        try
        {
            File.Move(temp, full, overwrite: false);
            return true;
        }
        catch (IOException) when (FileChecks.KindOf(full, followLinks: false) != PathKind.Missing)
        {
            return false;
        }
        finally
        {
            TryDelete(temp);
        }
    }

    /// <summary>
    /// Deletes the temporary files that a write interrupted by a kill left in <paramref name="directory"/> for targets
    /// named by <paramref name="targetPattern"/> (e.g. <c>*.ckpt</c>); only files of this class's naming scheme are
    /// touched. Returns their names.
    /// </summary>
    public static IReadOnlyList<string> RemoveTemporaries(string directory, string targetPattern = "*")
    {
        if (FileChecks.KindOf(directory, followLinks: false) != PathKind.Directory) return [];
        var removed = new List<string>();
        foreach (var file in Directory.EnumerateFiles(directory, $".{targetPattern}.*{TempSuffix}"))
        {
            if (FileChecks.KindOf(file, followLinks: false) != PathKind.File) continue;
            File.Delete(file);
            removed.Add(Path.GetFileName(file));
        }
        return removed;
    }

    static string TempPath(string full) =>
        Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Random.Shared.Next():x8}{TempSuffix}");

    static void TryDelete(string path)
    {
        try { File.Delete(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* RemoveTemporaries takes it later */ }
    }
}
