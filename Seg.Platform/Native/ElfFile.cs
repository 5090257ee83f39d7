using System.Buffers.Binary;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace Seg.Platform.Native;

/// <summary>
/// Reads the dynamic-linking tables of a 64-bit little-endian ELF shared object without loading the whole file
/// (OpenCV's native library is over 100 MB): section headers, <c>DT_NEEDED</c> entries, version needs and the
/// dynamic symbols, and the version definitions. Only what Seg's native patches need
/// (<see cref="HeadlessOpenCv"/>, <see cref="GlibcxxCompat"/>).
/// </summary>
internal sealed class ElfFile : IDisposable
{
    internal const uint ShtDynamic = 6, ShtDynSym = 11, ShtGnuVerdef = 0x6ffffffd, ShtGnuVerneed = 0x6ffffffe, ShtGnuVersym = 0x6fffffff;
    internal const long DtNull = 0, DtNeeded = 1;
    internal const int DynamicEntrySize = 16, SymbolSize = 24;

    internal readonly record struct Section(uint Type, long Offset, long Size, int Link);

    static ReadOnlySpan<byte> Magic => [0x7f, (byte)'E', (byte)'L', (byte)'F'];

    readonly SafeFileHandle handle;

    ElfFile(string path, SafeFileHandle handle, Section[] sections)
    {
        Path = path;
        this.handle = handle;
        Sections = sections;
    }

    /// <summary>The file, for messages.</summary>
    internal string Path { get; }

    internal Section[] Sections { get; }

    /// <summary>Opens <paramref name="path"/> read-only and reads its section headers.</summary>
    /// <exception cref="InvalidDataException">Not a 64-bit little-endian ELF file, or its headers lie outside it.</exception>
    internal static ElfFile Open(string path)
    {
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        try
        {
            var header = new byte[64];
            if (RandomAccess.Read(handle, header, 0) < header.Length || !header.AsSpan(0, 4).SequenceEqual(Magic))
                throw new InvalidDataException($"'{path}' is not an ELF file.");
            if (header[4] != 2 || header[5] != 1)
                throw new InvalidDataException($"'{path}' is not a 64-bit little-endian ELF file.");
            long shoff = checked((long)BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(0x28)));
            int shentsize = BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(0x3A));
            int shnum = BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(0x3C));
            long length = RandomAccess.GetLength(handle);
            if (shentsize < 64 || shoff < 0 || shoff + (long)shnum * shentsize > length)
                throw new InvalidDataException($"'{path}': its section headers lie outside the file.");
            var table = new byte[shnum * shentsize];
            RandomAccess.Read(handle, table, shoff);
            var sections = new Section[shnum];
            for (int i = 0; i < shnum; i++)
            {
                var s = table.AsSpan(i * shentsize);
                sections[i] = new Section(
                    Type: BinaryPrimitives.ReadUInt32LittleEndian(s[4..]),
                    Offset: checked((long)BinaryPrimitives.ReadUInt64LittleEndian(s[0x18..])),
                    Size: checked((long)BinaryPrimitives.ReadUInt64LittleEndian(s[0x20..])),
                    Link: (int)BinaryPrimitives.ReadUInt32LittleEndian(s[0x28..]));
                if (sections[i].Type != 8 /* SHT_NOBITS */ && sections[i].Offset + sections[i].Size > length)
                    throw new InvalidDataException($"'{path}': section {i} lies outside the file.");
            }
            return new ElfFile(path, handle, sections);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    internal Section? Find(uint type) =>
        Sections.Where(s => s.Type == type).Select(s => (Section?)s).FirstOrDefault();

    internal byte[] Read(Section section)
    {
        var bytes = new byte[section.Size];
        RandomAccess.Read(handle, bytes, section.Offset);
        return bytes;
    }

    internal static string ReadString(byte[] strtab, long offset)
    {
        int start = checked((int)offset), end = Array.IndexOf(strtab, (byte)0, start);
        return Encoding.ASCII.GetString(strtab, start, (end < 0 ? strtab.Length : end) - start);
    }

    /// <summary>The sonames of the <c>DT_NEEDED</c> entries, in order.</summary>
    internal IReadOnlyList<string> Needed()
    {
        if (Find(ShtDynamic) is not { } dynamic) return [];
        var strtab = Read(Sections[dynamic.Link]);
        return DynamicEntries(Read(dynamic)).Where(e => e.Tag == DtNeeded).Select(e => ReadString(strtab, e.Value)).ToList();
    }

    /// <summary>The files named by version needs (<c>.gnu.version_r</c>): the libraries whose versioned symbols
    /// this object uses.</summary>
    internal IReadOnlyList<string> VersionNeedFiles()
    {
        if (Find(ShtGnuVerneed) is not { } need) return [];
        var bytes = Read(need);
        var strtab = Read(Sections[need.Link]);
        var files = new List<string>();
        for (int entry = 0; entry + 16 <= bytes.Length;)
        {
            var s = bytes.AsSpan(entry);
            files.Add(ReadString(strtab, BinaryPrimitives.ReadUInt32LittleEndian(s[4..])));
            uint next = BinaryPrimitives.ReadUInt32LittleEndian(s[12..]);
            if (next == 0) break;
            entry += (int)next;
        }
        return files;
    }

    internal static IEnumerable<(long Tag, long Value)> DynamicEntries(byte[] dynamic)
    {
        for (int i = 0; i + DynamicEntrySize <= dynamic.Length; i += DynamicEntrySize)
        {
            long tag = BinaryPrimitives.ReadInt64LittleEndian(dynamic.AsSpan(i));
            if (tag == DtNull) yield break;
            yield return (tag, BinaryPrimitives.ReadInt64LittleEndian(dynamic.AsSpan(i + 8)));
        }
    }

    public void Dispose() => handle.Dispose();
}
