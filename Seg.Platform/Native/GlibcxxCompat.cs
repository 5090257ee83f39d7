using System.Buffers.Binary;

namespace Seg.Platform.Native;

/// <summary>
/// Makes TorchSharp 0.107's native shim loadable on hosts whose libstdc++ predates GCC 13 (e.g. Debian 12).
/// </summary>
/// <remarks>
/// <c>libLibTorchSharp.so</c> was linked against GCC 15's libstdc++ and so carries a version need for
/// <c>GLIBCXX_3.4.32</c>. The only symbol behind that version is <c>std::ios_base_library_init</c>, which the
/// shim references without any relocation, so the need is spurious. glibc refuses a library whose needed
/// version is missing unless the need is marked weak (<c>VER_FLG_WEAK</c> in its <c>Vernaux</c> entry of
/// <c>.gnu.version_r</c>), which is exactly what <see cref="PatchFile"/> does. The same code runs at build time
/// (the MSBuild target in <c>build/Seg.Platform.targets</c> loads this assembly) and at start-up from
/// Seg.Core's <c>SegRuntime.Initialize</c>; like all of Seg.Platform it references no TorchSharp type.
/// </remarks>
internal static class GlibcxxCompat
{
    /// <summary>The shim TorchSharp loads first.</summary>
    public const string ShimFileName = "libLibTorchSharp.so";
    /// <summary>The library whose version need is made weak.</summary>
    public const string LibStdCxx = "libstdc++.so.6";
    /// <summary>The version the shim needs and Debian 12 lacks.</summary>
    public const string RequiredVersion = "GLIBCXX_3.4.32";

    const ushort VerFlgWeak = 0x2;

    static readonly Lazy<string?> HostLibStdCxxPath = new(FindHostLibStdCxx);
    static readonly Lazy<bool> HostHasVersion = new(() =>
        HostLibStdCxxPath.Value is { } p && DefinesVersion(p, RequiredVersion));

    /// <summary>Path of the libstdc++ this process uses (null when none is found, e.g. not Linux).</summary>
    public static string? HostLibraryPath => HostLibStdCxxPath.Value;

    /// <summary>True when the host's libstdc++ defines <see cref="RequiredVersion"/>, so nothing needs patching.</summary>
    public static bool HostHasRequiredVersion => HostHasVersion.Value;

    /// <summary>
    /// Patches every <see cref="ShimFileName"/> below <paramref name="root"/> when the host lacks
    /// <see cref="RequiredVersion"/>. Returns the files changed (empty where nothing was needed).
    /// </summary>
    public static IReadOnlyList<string> PatchTree(string root)
    {
        if (!OperatingSystem.IsLinux() || HostHasRequiredVersion || !Directory.Exists(root)) return [];
        var changed = new List<string>();
        foreach (var file in Directory.EnumerateFiles(root, ShimFileName, SearchOption.AllDirectories))
            if (PatchFile(file)) changed.Add(file);
        return changed;
    }

    /// <summary>
    /// Marks the shim's need for <see cref="RequiredVersion"/> of <see cref="LibStdCxx"/> weak, in place and
    /// atomically (temp file + rename). Returns true when the file changed; false when it needed nothing.
    /// </summary>
    public static bool PatchFile(string path)
    {
        if (FindVersionNeedFlags(path) is not { } offset) return false;
        var bytes = File.ReadAllBytes(path);
        var flags = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(checked((int)offset)));
        if ((flags & VerFlgWeak) != 0) return false;
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(checked((int)offset)), (ushort)(flags | VerFlgWeak));
        var temp = path + ".seg-patch-" + Environment.ProcessId;
        File.WriteAllBytes(temp, bytes);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(temp, File.GetUnixFileMode(path));
        File.Move(temp, path, overwrite: true);
        return true;
    }

    /// <summary>True when <paramref name="path"/> still has a strong (non-weak) need for the version.</summary>
    public static bool HasStrongNeed(string path)
    {
        if (FindVersionNeedFlags(path) is not { } offset) return false;
        using var handle = File.OpenHandle(path);
        var flags = new byte[2];
        RandomAccess.Read(handle, flags, offset);
        return (BinaryPrimitives.ReadUInt16LittleEndian(flags) & VerFlgWeak) == 0;
    }

    // The file offset of vna_flags in the Vernaux entry (libstdc++, RequiredVersion) of .gnu.version_r, or null.
    static long? FindVersionNeedFlags(string path)
    {
        using var elf = ElfFile.Open(path);
        if (elf.Find(ElfFile.ShtGnuVerneed) is not { } need) return null;
        var (table, strtab) = (elf.Read(need), elf.Read(elf.Sections[need.Link]));
        for (int entry = 0; entry + 16 <= table.Length;)
        {
            var s = table.AsSpan(entry);
            ushort count = BinaryPrimitives.ReadUInt16LittleEndian(s[2..]);
            if (ElfFile.ReadString(strtab, BinaryPrimitives.ReadUInt32LittleEndian(s[4..])) == LibStdCxx)
                for (int a = entry + (int)BinaryPrimitives.ReadUInt32LittleEndian(s[8..]), j = 0; j < count && a + 16 <= table.Length; j++)
                {
                    var aux = table.AsSpan(a);
                    if (ElfFile.ReadString(strtab, BinaryPrimitives.ReadUInt32LittleEndian(aux[8..])) == RequiredVersion) return need.Offset + a + 4;
                    a += (int)BinaryPrimitives.ReadUInt32LittleEndian(aux[12..]);
                }
            uint next = BinaryPrimitives.ReadUInt32LittleEndian(s[12..]);
            if (next == 0) break;
            entry += (int)next;
        }
        return null;
    }

    // Whether an ELF shared object defines the symbol version (an entry of its .gnu.version_d).
    static bool DefinesVersion(string path, string version)
    {
        using var elf = ElfFile.Open(path);
        if (elf.Find(ElfFile.ShtGnuVerdef) is not { } def) return false;
        var (table, strtab) = (elf.Read(def), elf.Read(elf.Sections[def.Link]));
        for (int entry = 0; entry + 20 <= table.Length;)
        {
            var s = table.AsSpan(entry);
            uint aux = BinaryPrimitives.ReadUInt32LittleEndian(s[12..]);
            if (ElfFile.ReadString(strtab, BinaryPrimitives.ReadUInt32LittleEndian(table.AsSpan(entry + (int)aux))) == version) return true;
            uint next = BinaryPrimitives.ReadUInt32LittleEndian(s[16..]);
            if (next == 0) break;
            entry += (int)next;
        }
        return false;
    }

    // The libstdc++ the dynamic loader gives this process: the .NET host itself maps it, so /proc/self/maps
    // names the exact file; otherwise fall back to the usual multiarch locations.
    static string? FindHostLibStdCxx()
    {
        if (!OperatingSystem.IsLinux()) return null;
        if (MappedLibraries.Find(LibStdCxx).FirstOrDefault() is { } mapped) return mapped;
        foreach (var dir in new[] { "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib/x86_64-linux-gnu" })
        {
            var p = Path.Combine(dir, LibStdCxx);
            if (File.Exists(p)) return p;
        }
        return null;
    }
}
