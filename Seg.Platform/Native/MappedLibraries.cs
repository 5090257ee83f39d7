namespace Seg.Platform.Native;

/// <summary>The shared libraries the dynamic loader has mapped into this process (Linux: /proc/self/maps).</summary>
internal static class MappedLibraries
{
    /// <summary>Full paths of the mapped files whose name starts with <paramref name="fileNamePrefix"/>, each
    /// once, in address order; none where /proc/self/maps cannot be read.</summary>
    public static IEnumerable<string> Find(string fileNamePrefix)
    {
        if (!OperatingSystem.IsLinux()) return [];
        try
        {
            return File.ReadLines("/proc/self/maps")
                .Select(line => line.IndexOf('/') is var slash and >= 0 ? line[slash..].Trim() : null)
                .OfType<string>()
                .Where(path => Path.GetFileName(path).StartsWith(fileNamePrefix, StringComparison.Ordinal))
                .Distinct()
                .ToList();
        }
        catch (IOException)
        {
            return [];
        }
    }
}
