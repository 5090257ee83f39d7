using System.Runtime.InteropServices;

namespace Seg.Platform.Native;

/// <summary>A native library that Seg needs (libtorch, OpenCV) could not be loaded; the message says which, why, and the fix.</summary>
public sealed class NativeLoadException : Exception
{
    /// <summary>A load failure explained by <paramref name="message"/>, caused by <paramref name="inner"/>.</summary>
    public NativeLoadException(string message, Exception? inner = null) : base(message, inner) { }

    /// <summary>The dynamic loader's own text: .NET wraps dlerror() in advice lines, the last line is dlerror().</summary>
    public static string LoaderReason(Exception e) =>
        e.Message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)[^1];

    /// <summary>The dynamic loader's reason for not loading <paramref name="file"/> now ("unknown" when it loads).</summary>
    public static string LoaderReason(string file)
    {
        try
        {
            NativeLibrary.Load(file);
            return "unknown";
        }
        catch (Exception e)
        {
            return LoaderReason(e);
        }
    }
}

