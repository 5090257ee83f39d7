using System.Runtime.InteropServices;

namespace Seg.Platform.IO;

/// <summary>
/// What kind of file a path names, asked before opening it: a FIFO blocks every reader until a writer comes, a
/// device such as <c>/dev/zero</c> never ends, and a symbolic link planted in an output folder would redirect a
/// write to its target. .NET tells none of these apart, so on Linux the kind comes from <c>statx</c> (whose
/// buffer layout is the same on every architecture); elsewhere from the file attributes .NET has.
/// </summary>
public static partial class FileChecks
{
    /// <summary>The kind of <paramref name="path"/>; with <paramref name="followLinks"/> false a link is reported as
    /// <see cref="PathKind.SymbolicLink"/>, otherwise as what it points at (<see cref="PathKind.Missing"/> when dangling).</summary>
    public static PathKind KindOf(string path, bool followLinks = true)
    {
        if (OperatingSystem.IsLinux() && StatxKind(path, followLinks) is { } kind) return kind;
        return ManagedKind(path, followLinks);
    }

    /// <summary>A reader's check, before opening: <paramref name="path"/> must be a regular file (links followed).</summary>
    /// <param name="path">The file.</param>
    /// <param name="what">What the file is, for the message (e.g. <c>--config</c>, <c>mask</c>).</param>
    /// <exception cref="FileNotFoundException">No such file; the message names <paramref name="what"/> and the path.</exception>
    /// <exception cref="IOException">It is a directory, FIFO, device or socket; the message says which.</exception>
    public static void RequireRegularFile(string path, string what)
    {
        var kind = KindOf(path);
        if (kind == PathKind.Missing) throw new FileNotFoundException($"{what}: no such file: {path}", path);
        if (kind != PathKind.File)
            throw new IOException($"{what}: {path} is {Describe(kind)}, not a regular file; Seg reads only regular files.");
    }

    /// <summary>A writer's check, before replacing <paramref name="path"/>: it must be absent or a regular file, and not a
    /// symbolic link (a write would land on the link's target, or the rename would drop a link that Seg did not make).</summary>
    /// <param name="path">The file to be written.</param>
    /// <param name="what">What the file is, for the message (e.g. <c>--output</c>).</param>
    /// <exception cref="IOException">Something else is there; the message names it and its kind.</exception>
    public static void RequireWritableFile(string path, string what)
    {
        var kind = KindOf(path, followLinks: false);
        if (kind is not (PathKind.Missing or PathKind.File))
            throw new IOException($"{what}: {path} is {Describe(kind)}; Seg writes only regular files that it creates or replaces, " +
                                  "never through a link or into a device: remove it or choose another path.");
    }

    /// <summary><paramref name="kind"/> with an article, for messages ("a FIFO (named pipe)").</summary>
    public static string Describe(PathKind kind) => kind switch
    {
        PathKind.Missing => "missing",
        PathKind.File => "a regular file",
        PathKind.Directory => "a directory",
        PathKind.SymbolicLink => "a symbolic link",
        PathKind.Fifo => "a FIFO (named pipe)",
        PathKind.CharacterDevice => "a character device",
        PathKind.BlockDevice => "a block device",
        PathKind.Socket => "a socket",
        _ => kind.ToString(),
    };

    static PathKind ManagedKind(string path, bool followLinks)
    {
        FileSystemInfo info = Directory.Exists(path) ? new DirectoryInfo(path) : new FileInfo(path);
        if (!followLinks && info.LinkTarget is not null) return PathKind.SymbolicLink;
        if (!info.Exists) return PathKind.Missing;
        var attributes = info.Attributes;
        if (attributes.HasFlag(FileAttributes.Directory)) return PathKind.Directory;
        if (attributes.HasFlag(FileAttributes.Device)) return PathKind.CharacterDevice;
        return PathKind.File;
    }

    // struct statx: stx_mode is the u16 at byte 28 of a 256-byte buffer (linux/stat.h), the same on all architectures.
    const int AtFdCwd = -100, AtSymlinkNoFollow = 0x100, StatxType = 0x1, StatxBufferSize = 256, ModeOffset = 28;
    const int ENOENT = 2, ENOTDIR = 20, ENAMETOOLONG = 36, ELOOP = 40;
    static bool statxMissing;

    static PathKind? StatxKind(string path, bool followLinks)
    {
        if (statxMissing) return null;
        Span<byte> buffer = stackalloc byte[StatxBufferSize];
        int result;
        try
        {
            unsafe
            {
                fixed (byte* b = buffer)
                    result = statx(AtFdCwd, path, followLinks ? 0 : AtSymlinkNoFollow, StatxType, b);
            }
        }
        catch (EntryPointNotFoundException) { statxMissing = true; return null; }
        catch (DllNotFoundException) { statxMissing = true; return null; }
        if (result != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            // ENOENT/ENOTDIR: nothing there; ELOOP/ENAMETOOLONG: nothing reachable there either. Anything else
            // (ENOSYS or EPERM under an old seccomp profile, EACCES): let .NET's own view decide.
            return errno is ENOENT or ENOTDIR or ELOOP or ENAMETOOLONG ? PathKind.Missing : null;
        }
        var mode = BitConverter.ToUInt16(buffer[ModeOffset..]) & 0xF000;
        return mode switch
        {
            0x8000 => PathKind.File,
            0x4000 => PathKind.Directory,
            0xA000 => PathKind.SymbolicLink,
            0x1000 => PathKind.Fifo,
            0x2000 => PathKind.CharacterDevice,
            0x6000 => PathKind.BlockDevice,
            0xC000 => PathKind.Socket,
            _ => null,
        };
    }

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int statx(int dirfd, string path, int flags, uint mask, byte* buffer);
}
