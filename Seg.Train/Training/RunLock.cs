using System.Globalization;
using System.Text;
using Seg.Core.IO;
using Seg.Platform.IO;

namespace Seg.Train.Training;

/// <summary>
/// <c>DIR/run.lock</c>: one training run per output folder. The file names its owner (PID, host, start time); the
/// exclusion itself is the operating system's file lock, which dies with the process, so a lock left by a killed
/// run is simply taken over.
/// </summary>
/// <remarks>
/// Taking it: open the file exclusively (<see cref="FileShare.None"/>: <c>flock(LOCK_EX)</c> on Unix, a deny-all
/// share mode on Windows), write the owner line, close, then hold it open shared-for-reading, so that a second run
/// can read who owns the folder but cannot lock it. A run that slipped in between the two opens would have written
/// its own line, so the owner reads its line back and gives up when it is not there. Released: the file is deleted
/// while still held, then closed.
/// </remarks>
public sealed class RunLock : IDisposable
{
    /// <summary>The lock file's name in the run directory.</summary>
    public const string FileName = "run.lock";

    readonly FileStream held;

    RunLock(string path, FileStream held)
    {
        Path = path;
        this.held = held;
    }

    /// <summary>The lock file.</summary>
    public string Path { get; }

    /// <summary>Locks <paramref name="root"/> for this process, creating it if needed; <paramref name="note"/> hears
    /// about a stale lock taken over.</summary>
    /// <exception cref="IOException">Another live process holds the folder; the message names it.</exception>
    public static RunLock Acquire(string root, Action<string>? note = null)
    {
        Directory.CreateDirectory(root);
        var path = System.IO.Path.Combine(root, FileName);
        CreateIfMissing(path);
        var owner = string.Create(CultureInfo.InvariantCulture,
            $"pid {Environment.ProcessId} on {Environment.MachineName}, started {DateTime.Now:yyyy-MM-dd HH:mm:ss} ({Guid.NewGuid():N})");
        string previous;
        try
        {
            using var exclusive = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            previous = ReadLine(exclusive);
            exclusive.SetLength(0);
            exclusive.Write(Encoding.UTF8.GetBytes(owner + "\n"));
            exclusive.Flush(flushToDisk: true);
        }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException)
        {
            throw IsLockConflict(e) ? Busy(root, path, e) : CannotWrite(path, e);
        }
        FileStream held;
        try
        {
            held = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        }
        catch (IOException e)
        {
            throw Busy(root, path, e);
        }
        if (ReadLine(held) != owner)
        {
            held.Dispose();
            throw Busy(root, path, null);
        }
        if (previous.Length > 0)
            note?.Invoke($"note: {path} was left by a run that is no longer running ({Owner(previous)}); taking it over");
        return new RunLock(path, held);
    }

    /// <summary>Refuses, naming the owner, a folder whose <c>run.lock</c> a live run holds; takes and drops the lock
    /// at once otherwise (nothing is written).</summary>
    /// <exception cref="IOException">Another live process holds the folder.</exception>
    public static void ThrowIfHeld(string root)
    {
        var path = System.IO.Path.Combine(root, FileName);
        if (FileChecks.KindOf(path, followLinks: false) != PathKind.File) return;
        try { new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.None).Dispose(); }
        catch (IOException e) when (IsLockConflict(e)) { throw Busy(root, path, e); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* Acquire names the cause */ }
    }

    // The lock file is made like every file of the run folder: a new temporary file, then a rename that does not
    // replace (so that two runs starting at once end up with one file); an existing link or device is refused.
    static void CreateIfMissing(string path)
    {
        FileChecks.RequireWritableFile(path, "the run's lock file");
        try { AtomicFile.CreateEmptyIfMissing(path); }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException && !IsLockConflict(e))
        {
            throw CannotWrite(path, e);
        }
        FileChecks.RequireWritableFile(path, "the run's lock file");
    }

    // flock(LOCK_EX | LOCK_NB) on a held file fails with EWOULDBLOCK (11 on Linux, 35 on macOS); Windows reports a
    // sharing or lock violation. Anything else (a read-only mount, a full disk) is not another run.
    static bool IsLockConflict(IOException e) =>
        (e.HResult & 0xFFFF) is 11 or 35 or 32 /* ERROR_SHARING_VIOLATION */ or 33 /* ERROR_LOCK_VIOLATION */;

    static IOException CannotWrite(string path, IOException e) =>
        new(e.HResult switch
        {
            30 => $"cannot create the run's lock file {path}: the file system is read-only; train into a writable --output.",
            28 or 122 => $"cannot create the run's lock file {path}: no space left on device; free some space or train into another --output.",
            _ => $"cannot create the run's lock file {path}: {e.Message}",
        }, e);

    /// <summary>Deletes the lock file and releases the folder.</summary>
    public void Dispose()
    {
        try { File.Delete(Path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* the next run takes it over */ }
        held.Dispose();
    }

    static IOException Busy(string root, string path, Exception? inner)
    {
        var owner = "";
        try
        {
            using var reader = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            owner = ReadLine(reader);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* held exclusively this instant */ }
        return new IOException($"{root} is in use by another training run ({(owner.Length > 0 ? Owner(owner) : "its owner is writing the lock file")}; " +
                               $"lock file {path}). Wait for it to finish, or train into another folder with --output.", inner);
    }

    static string Owner(string line)
    {
        var nonce = line.LastIndexOf(" (", StringComparison.Ordinal);
        return nonce > 0 ? line[..nonce] : line;
    }

    static string ReadLine(FileStream stream)
    {
        var buffer = new byte[512];
        stream.Position = 0;
        var n = stream.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
        var text = Encoding.UTF8.GetString(buffer, 0, n);
        var end = text.IndexOf('\n');
        return end >= 0 ? text[..end] : text.Trim();
    }
}
