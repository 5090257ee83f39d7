namespace Seg.Platform.IO;

/// <summary>What a path names, as <c>lstat</c>/<c>stat</c> tell it (see <see cref="FileChecks.KindOf"/>).</summary>
public enum PathKind
{
    /// <summary>Nothing there (or a parent folder is missing).</summary>
    Missing,
    /// <summary>A regular file.</summary>
    File,
    /// <summary>A directory.</summary>
    Directory,
    /// <summary>A symbolic link (only when links are not followed).</summary>
    SymbolicLink,
    /// <summary>A named pipe: opening it for reading blocks until a writer appears.</summary>
    Fifo,
    /// <summary>A character device such as <c>/dev/zero</c> or <c>/dev/full</c>.</summary>
    CharacterDevice,
    /// <summary>A block device.</summary>
    BlockDevice,
    /// <summary>A Unix domain socket.</summary>
    Socket,
}
