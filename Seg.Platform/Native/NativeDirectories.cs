namespace Seg.Platform.Native;

/// <summary>Where this app's native libraries lie.</summary>
internal static class NativeDirectories
{
    /// <summary>The directories the .NET host probes for native libraries (from deps.json), then the app folder,
    /// its <c>runtimes/linux-x64/native</c> and <c>cpu</c> folders; those that exist, each once.</summary>
    public static IEnumerable<string> Search()
    {
        var dirs = (AppContext.GetData("NATIVE_DLL_SEARCH_DIRECTORIES") as string ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Append(AppContext.BaseDirectory)
            .Append(Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native"))
            .Append(Path.Combine(AppContext.BaseDirectory, "cpu"));
        return dirs.Select(d => Path.GetFullPath(d)).Distinct().Where(Directory.Exists);
    }
}
