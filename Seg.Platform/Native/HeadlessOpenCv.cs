using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Seg.Platform.Native;

/// <summary>
/// Makes OpenCvSharp's native library (<c>libOpenCvSharpExtern.so</c>) load on hosts without GTK and X11, such as
/// servers and the .NET SDK containers.
/// </summary>
/// <remarks>
/// The official OpenCvSharp runtime for linux-x64 links GTK 3, GDK, Pango, Cairo, GLib, X11, libdrm, FreeType and
/// HarfBuzz for OpenCV's window functions (<c>imshow</c> and friends), which Seg never calls. glibc refuses to load a
/// library whose <c>DT_NEEDED</c> entries are missing, so on such hosts the first OpenCV call fails with a bare
/// <c>TypeInitializationException</c>. <see cref="PatchFile"/> removes the <c>DT_NEEDED</c> entries that cannot be
/// loaded here, if no version need refers to them (the C and C++ runtimes, which every program has, are versioned;
/// the GUI toolkits are not), and marks the library's unversioned undefined symbols weak, so the dynamic loader
/// binds what it finds and leaves the rest unresolved instead of failing. The GUI functions then cannot be called
/// (they would crash), which costs Seg nothing. On a host that has every library the file is left as it is.
/// <para>The same code runs after every build and publish (<c>build/Seg.Platform.targets</c>, on the output's copy)
/// and at start-up from <see cref="EnsureLoaded"/>; it references no OpenCvSharp type. Set
/// <c>SEG_NATIVE_PATCH=0</c> to forbid start-up patching.</para>
/// </remarks>
public static class HeadlessOpenCv
{
    /// <summary>OpenCvSharp's native library.</summary>
    public const string LibraryFileName = "libOpenCvSharpExtern.so";

    const byte StbGlobal = 1, StbWeak = 2;

    static readonly object Gate = new();
    static NativeLoadException? loadFailure;
    static bool loaded;

    /// <summary>
    /// The dependencies of the ELF file at <paramref name="path"/> that this host cannot load and that no version
    /// need refers to: what <see cref="PatchFile"/> removes. Empty where every dependency loads.
    /// </summary>
    /// <param name="path">A shared library, e.g. <see cref="LibraryFileName"/>.</param>
    /// <param name="canLoad">Whether a soname loads here; by default the dynamic loader is asked.</param>
    public static IReadOnlyList<string> UnloadableOptionalDependencies(string path, Func<string, bool>? canLoad = null)
    {
        using var elf = ElfFile.Open(path);
        return OptionalUnloadable(elf, canLoad ?? CanLoad);
    }

    static IReadOnlyList<string> OptionalUnloadable(ElfFile elf, Func<string, bool> canLoad)
    {
        var versioned = elf.VersionNeedFiles().ToHashSet(StringComparer.Ordinal);
        return elf.Needed().Where(n => !versioned.Contains(n) && !canLoad(n)).ToList();
    }

    static bool CanLoad(string soname)
    {
        if (!NativeLibrary.TryLoad(soname, out var handle)) return false;
        NativeLibrary.Free(handle);
        return true;
    }

    /// <summary>
    /// Removes the dependencies that <see cref="UnloadableOptionalDependencies"/> names and marks the unversioned
    /// undefined symbols weak, atomically (temp file + rename, keeping the file's mode and modification time so that
    /// incremental builds do not copy the original over it again). Returns the removed sonames; empty when nothing
    /// needed doing.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is not a 64-bit little-endian ELF shared library.</exception>
    public static IReadOnlyList<string> PatchFile(string path, Func<string, bool>? canLoad = null)
    {
        byte[] dynamic, symbols, versions;
        ElfFile.Section dynamicSection, symbolSection;
        IReadOnlyList<string> dropped;
        using (var elf = ElfFile.Open(path))
        {
            dropped = OptionalUnloadable(elf, canLoad ?? CanLoad);
            if (dropped.Count == 0) return [];
            dynamicSection = elf.Find(ElfFile.ShtDynamic)!.Value;
            symbolSection = elf.Find(ElfFile.ShtDynSym)
                ?? throw new InvalidDataException($"'{path}' has no dynamic symbol table.");
            dynamic = WithoutNeeded(elf.Read(dynamicSection), elf.Read(elf.Sections[dynamicSection.Link]), dropped);
            symbols = elf.Read(symbolSection);
            versions = elf.Find(ElfFile.ShtGnuVersym) is { } v ? elf.Read(v) : [];
        }
        WeakenUnversionedUndefined(symbols, versions);

        var temp = path + ".seg-patch-" + Environment.ProcessId;
        File.Copy(path, temp, overwrite: true);
        try
        {
            using (var handle = File.OpenHandle(temp, FileMode.Open, FileAccess.Write))
            {
                RandomAccess.Write(handle, dynamic, dynamicSection.Offset);
                RandomAccess.Write(handle, symbols, symbolSection.Offset);
                RandomAccess.FlushToDisk(handle);
            }
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(temp, File.GetUnixFileMode(path));
            File.SetLastWriteTimeUtc(temp, File.GetLastWriteTimeUtc(path));
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            File.Delete(temp);
        }
        return dropped;
    }

    /// <summary>Patches every <see cref="LibraryFileName"/> below <paramref name="root"/> (see <see cref="PatchFile"/>).
    /// Returns one line per changed file, naming the removed dependencies.</summary>
    public static IReadOnlyList<string> PatchTree(string root)
    {
        if (!OperatingSystem.IsLinux() || !Directory.Exists(root)) return [];
        var changed = new List<string>();
        foreach (var file in Directory.EnumerateFiles(root, LibraryFileName, SearchOption.AllDirectories))
            if (PatchFile(file) is { Count: > 0 } dropped)
                changed.Add($"{file} (without {string.Join(", ", dropped)})");
        return changed;
    }

    // The dynamic section with the dropped DT_NEEDED entries taken out; the freed entries at the end become DT_NULL.
    static byte[] WithoutNeeded(byte[] dynamic, byte[] strtab, IReadOnlyList<string> dropped)
    {
        var kept = ElfFile.DynamicEntries(dynamic)
            .Where(e => e.Tag != ElfFile.DtNeeded || !dropped.Contains(ElfFile.ReadString(strtab, e.Value)))
            .ToList();
        var result = new byte[dynamic.Length];
        for (int i = 0; i < kept.Count; i++)
        {
            BinaryPrimitives.WriteInt64LittleEndian(result.AsSpan(i * ElfFile.DynamicEntrySize), kept[i].Tag);
            BinaryPrimitives.WriteInt64LittleEndian(result.AsSpan(i * ElfFile.DynamicEntrySize + 8), kept[i].Value);
        }
        return result;
    }

    // st_info's high nibble is the binding; an undefined symbol has section index 0; a version index of 0 or 1
    // (local, global) means no version, i.e. not from the C or C++ runtime.
    static void WeakenUnversionedUndefined(byte[] symbols, byte[] versions)
    {
        for (int i = 1; i * ElfFile.SymbolSize < symbols.Length; i++)
        {
            var s = symbols.AsSpan(i * ElfFile.SymbolSize);
            bool undefined = BinaryPrimitives.ReadUInt16LittleEndian(s[6..]) == 0;
            bool unversioned = versions.Length < 2 * (i + 1) || (BinaryPrimitives.ReadUInt16LittleEndian(versions.AsSpan(2 * i)) & 0x7fff) <= 1;
            if (undefined && unversioned && s[4] >> 4 == StbGlobal)
                s[4] = (byte)((StbWeak << 4) | (s[4] & 0xf));
        }
    }

    /// <summary>
    /// Makes sure OpenCV's native library loads in this process, patching the application's copy first where this
    /// host lacks its GUI libraries (see the class remarks). Call it before the first OpenCvSharp call; Seg.Data's
    /// datasets, Seg.Train's <c>predict</c>, and Seg.Onnx's <c>OnnxSegmenter.Load</c> and image readers do. Idempotent and thread-safe; does nothing off Linux, or where the library is
    /// not among the application's native folders (OpenCvSharp then finds it its own way).
    /// </summary>
    /// <exception cref="NativeLoadException">It still does not load: the message names the library, the shared
    /// libraries it misses and the <c>apt-get install</c> line that provides them.</exception>
    public static void EnsureLoaded()
    {
        if (Volatile.Read(ref loaded)) return;
        lock (Gate)
        {
            if (loaded) return;
            if (loadFailure is not null) throw loadFailure;
            if (OperatingSystem.IsLinux() && Find() is { } file && !NativeLibrary.TryLoad(file, out _))
            {
                string? notPatched = null;
                if (Environment.GetEnvironmentVariable("SEG_NATIVE_PATCH") == "0") notPatched = "SEG_NATIVE_PATCH=0 forbids patching it";
                else
                {
                    try { PatchFile(file); }
                    catch (Exception e) when (e is IOException or UnauthorizedAccessException) { notPatched = $"it could not be patched ({e.Message})"; }
                }
                if (!NativeLibrary.TryLoad(file, out _))
                    throw loadFailure = Diagnose(file, notPatched);
            }
            Volatile.Write(ref loaded, true);
        }
    }

    /// <summary>The copy of <see cref="LibraryFileName"/> the .NET host would load, or null.</summary>
    static string? Find() => NativeDirectories.Search()
        .Select(d => Path.Combine(d, LibraryFileName)).FirstOrDefault(File.Exists);

    /// <summary>Explains why the library at <paramref name="file"/> does not load: the loader's reason, every
    /// dependency that does not load, and the Debian packages that provide them.</summary>
    internal static NativeLoadException Diagnose(string file, string? notPatched)
    {
        var reason = NativeLoadException.LoaderReason(file);
        List<string> missing;
        try
        {
            using var elf = ElfFile.Open(file);
            missing = elf.Needed().Where(n => !CanLoad(n)).ToList();
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            missing = [];
        }
        var packages = missing.Select(DebianPackage).Distinct().ToList();
        var fix = packages.Count > 0 ? $"apt-get install -y {string.Join(' ', packages)}" : "install the shared library the loader names";
        return new NativeLoadException(
            $"OpenCV's native library '{file}' failed to load: {reason}" +
            (missing.Count > 0 ? $"; missing: {string.Join(", ", missing)}" : "") +
            (notPatched is not null ? $"; Seg makes it load without its GUI libraries by patching the file, but {notPatched}" : "") +
            $". Fix: {fix}");
    }

    // The Debian 12 / Ubuntu package of each library OpenCvSharp's runtime links.
    static string DebianPackage(string soname) => soname switch
    {
        "libgtk-3.so.0" or "libgdk-3.so.0" => "libgtk-3-0",
        "libpangocairo-1.0.so.0" => "libpangocairo-1.0-0",
        "libpango-1.0.so.0" => "libpango-1.0-0",
        "libatk-1.0.so.0" => "libatk1.0-0",
        "libcairo-gobject.so.2" => "libcairo-gobject2",
        "libcairo.so.2" => "libcairo2",
        "libgdk_pixbuf-2.0.so.0" => "libgdk-pixbuf-2.0-0",
        "libgio-2.0.so.0" or "libgobject-2.0.so.0" or "libglib-2.0.so.0" => "libglib2.0-0",
        "libdrm.so.2" => "libdrm2",
        "libatomic.so.1" => "libatomic1",
        "libX11.so.6" => "libx11-6",
        "libfreetype.so.6" => "libfreetype6",
        "libharfbuzz.so.0" => "libharfbuzz0b",
        "libstdc++.so.6" => "libstdc++6",
        "libgcc_s.so.1" => "libgcc-s1",
        _ => $"<the package providing {soname}>",
    };
}
