using System.Runtime.InteropServices;

namespace Seg.Onnx.Imaging;

/// <summary>
/// Refuses paths that are not regular files before anything opens them: opening a FIFO for reading blocks until a
/// writer comes (forever, for a reader that was handed one by mistake), and a character device (<c>/dev/zero</c>)
/// never ends. .NET's file API does not tell these apart from regular files, so on Linux the file type is read with
/// <c>statx(2)</c>, whose buffer layout is the same on every architecture; other systems pass.
/// </summary>
/// <remarks>Seg.Core's <c>Seg.Core.IO.FileChecks</c> does the same for the training side; Seg.Onnx cannot reference
/// Seg.Core (it would bring TorchSharp to deploy apps), hence this internal twin.</remarks>
internal static class RegularFile
{
    /// <summary>Throws unless <paramref name="path"/> names an existing regular file (symbolic links followed).</summary>
    /// <param name="path">The file.</param>
    /// <param name="what">What the file is for the caller ("image", "ONNX model"), for the message.</param>
    /// <exception cref="FileNotFoundException">Nothing at <paramref name="path"/>.</exception>
    /// <exception cref="IOException">A directory, FIFO, socket or device (the message names the path and the kind).</exception>
    public static void Require(string path, string what)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (Directory.Exists(path)) throw new IOException($"{path}: the {what} is a directory, not a file.");
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such {what} file.", path);
        if (Kind(path) is { } kind)
            throw new IOException($"{path}: the {what} is a {kind}, not a regular file; Seg reads regular files only (a {kind} may block or never end).");
    }

    /// <summary>The file type when it is not a regular file ("FIFO", "character device", …), else null.</summary>
    static string? Kind(string path)
    {
        if (!OperatingSystem.IsLinux()) return null;
        Span<byte> buffer = stackalloc byte[256]; // struct statx is 256 bytes; stx_mode is the u16 at offset 28
        int rc;
        try
        {
            unsafe
            {
                fixed (byte* b = buffer) rc = Statx(AtFdCwd, path, 0, StatxType, b);
            }
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException) { return null; } // a libc without statx
        if (rc != 0) return null; // an old kernel, or a seccomp profile that denies statx: leave it to the open
        int type = BitConverter.ToUInt16(buffer[28..]) & 0xF000;
        return type switch
        {
            0x8000 => null,
            0x1000 => "FIFO (named pipe)",
            0x2000 => "character device",
            0x6000 => "block device",
            0xC000 => "socket",
            0x4000 => "directory",
            _ => $"special file (type 0x{type:x4})",
        };
    }

    const int AtFdCwd = -100;
    const uint StatxType = 1;

    [DllImport("libc", EntryPoint = "statx", SetLastError = true)]
    static extern unsafe int Statx(int dirfd, [MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, uint mask, byte* buffer);
}
