using System.Buffers.Binary;
using System.Text;

namespace Seg.Core.Native;

/// <summary>
/// Makes TorchSharp 0.107's native shim loadable on hosts whose libstdc++ predates GCC 13 (e.g. Debian 12).
/// </summary>
/// <remarks>
/// <c>libLibTorchSharp.so</c> was linked against GCC 15's libstdc++ and so carries a version need for
/// <c>GLIBCXX_3.4.32</c>. The only symbol behind that version is <c>std::ios_base_library_init</c>, which the
/// shim references without any relocation, so the need is spurious. glibc refuses a library whose needed
/// version is missing unless the need is marked weak (<c>VER_FLG_WEAK</c> in its <c>Vernaux</c> entry of
/// <c>.gnu.version_r</c>), which is exactly what <see cref="PatchFile"/> does. The same code runs at build time
/// (the MSBuild target in <c>build/Seg.Core.targets</c> loads this assembly) and at start-up from
/// <see cref="SegRuntime.Initialize"/>; it deliberately references no TorchSharp type.
/// </remarks>
internal static class GlibcxxCompat
{
    /// <summary>The shim TorchSharp loads first.</summary>
    public const string ShimFileName = "libLibTorchSharp.so";
    /// <summary>The library whose version need is made weak.</summary>
    public const string LibStdCxx = "libstdc++.so.6";
    /// <summary>The version the shim needs and Debian 12 lacks.</summary>
    public const string RequiredVersion = "GLIBCXX_3.4.32";

    const uint ShtGnuVerdef = 0x6ffffffd, ShtGnuVerneed = 0x6ffffffe;
    const ushort VerFlgWeak = 0x2;

    static readonly Lazy<string?> HostLibStdCxxPath = new(FindHostLibStdCxx);
    static readonly Lazy<bool> HostHasVersion = new(() =>
        HostLibStdCxxPath.Value is { } p && DefinesVersion(File.ReadAllBytes(p), RequiredVersion));

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
        var bytes = File.ReadAllBytes(path);
        var offset = FindVersionNeedFlags(bytes, LibStdCxx, RequiredVersion, path);
        if (offset is null) return false;
        var flags = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(offset.Value));
        if ((flags & VerFlgWeak) != 0) return false;
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(offset.Value), (ushort)(flags | VerFlgWeak));
        var temp = path + ".seg-patch-" + Environment.ProcessId;
        File.WriteAllBytes(temp, bytes);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(temp, File.GetUnixFileMode(path));
        File.Move(temp, path, overwrite: true);
        return true;
    }

    /// <summary>True when <paramref name="path"/> still has a strong (non-weak) need for the version.</summary>
    public static bool HasStrongNeed(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var offset = FindVersionNeedFlags(bytes, LibStdCxx, RequiredVersion, path);
        return offset is not null && (BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(offset.Value)) & VerFlgWeak) == 0;
    }

    // Returns the file offset of vna_flags of the Vernaux entry (file, version), or null when absent.
    static int? FindVersionNeedFlags(byte[] elf, string file, string version, string pathForErrors)
    {
        var elfFile = ElfSections.Parse(elf, pathForErrors);
        var need = elfFile.Find(ShtGnuVerneed);
        if (need is null) return null;
        var strtab = elfFile.Sections[need.Value.Link];
        int entry = (int)need.Value.Offset;
        for (int i = 0; i < need.Value.Info; i++)
        {
            var s = elf.AsSpan(entry);
            ushort count = BinaryPrimitives.ReadUInt16LittleEndian(s[2..]);
            uint fileName = BinaryPrimitives.ReadUInt32LittleEndian(s[4..]);
            uint aux = BinaryPrimitives.ReadUInt32LittleEndian(s[8..]);
            uint next = BinaryPrimitives.ReadUInt32LittleEndian(s[12..]);
            if (ReadString(elf, strtab.Offset + fileName) == file)
            {
                int a = entry + (int)aux;
                for (int j = 0; j < count; j++)
                {
                    var sa = elf.AsSpan(a);
                    uint name = BinaryPrimitives.ReadUInt32LittleEndian(sa[8..]);
                    if (ReadString(elf, strtab.Offset + name) == version) return a + 4;
                    a += (int)BinaryPrimitives.ReadUInt32LittleEndian(sa[12..]);
                }
            }
            if (next == 0) break;
            entry += (int)next;
        }
        return null;
    }

    /// <summary>True when an ELF shared object defines the symbol version (its <c>.gnu.version_d</c>).</summary>
    internal static bool DefinesVersion(byte[] elf, string version)
    {
        var elfFile = ElfSections.Parse(elf, "libstdc++");
        var def = elfFile.Find(ShtGnuVerdef);
        if (def is null) return false;
        var strtab = elfFile.Sections[def.Value.Link];
        int entry = (int)def.Value.Offset;
        for (int i = 0; i < def.Value.Info; i++)
        {
            var s = elf.AsSpan(entry);
            uint aux = BinaryPrimitives.ReadUInt32LittleEndian(s[12..]);
            uint next = BinaryPrimitives.ReadUInt32LittleEndian(s[16..]);
            uint name = BinaryPrimitives.ReadUInt32LittleEndian(elf.AsSpan(entry + (int)aux));
            if (ReadString(elf, strtab.Offset + name) == version) return true;
            if (next == 0) break;
            entry += (int)next;
        }
        return false;
    }

    static string ReadString(byte[] elf, ulong offset)
    {
        int start = checked((int)offset), end = Array.IndexOf(elf, (byte)0, start);
        return Encoding.ASCII.GetString(elf, start, end - start);
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

    readonly record struct Section(uint Type, ulong Offset, ulong Size, int Link, uint Info);

    sealed class ElfSections
    {
        public required Section[] Sections { get; init; }
        public Section? Find(uint type) => Sections.Where(s => s.Type == type).Select(s => (Section?)s).FirstOrDefault();

        public static ElfSections Parse(byte[] elf, string path)
        {
            if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
                throw new InvalidDataException($"'{path}' is not an ELF file.");
            if (elf[4] != 2 || elf[5] != 1)
                throw new InvalidDataException($"'{path}' is not a 64-bit little-endian ELF file.");
            var h = elf.AsSpan();
            ulong shoff = BinaryPrimitives.ReadUInt64LittleEndian(h[0x28..]);
            ushort shentsize = BinaryPrimitives.ReadUInt16LittleEndian(h[0x3A..]);
            ushort shnum = BinaryPrimitives.ReadUInt16LittleEndian(h[0x3C..]);
            var sections = new Section[shnum];
            for (int i = 0; i < shnum; i++)
            {
                var s = h[checked((int)shoff + i * shentsize)..];
                sections[i] = new Section(
                    Type: BinaryPrimitives.ReadUInt32LittleEndian(s[4..]),
                    Offset: BinaryPrimitives.ReadUInt64LittleEndian(s[0x18..]),
                    Size: BinaryPrimitives.ReadUInt64LittleEndian(s[0x20..]),
                    Link: (int)BinaryPrimitives.ReadUInt32LittleEndian(s[0x28..]),
                    Info: BinaryPrimitives.ReadUInt32LittleEndian(s[0x2C..]));
            }
            return new ElfSections { Sections = sections };
        }
    }
}
