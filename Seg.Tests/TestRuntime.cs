using System.Runtime.CompilerServices;
using Seg.Core;
using Seg.Core.Native;

namespace Seg.Tests;

internal static class TestRuntime
{
    /// <summary>Every test class runs on a libtorch set up as Seg's applications set it up (the GLIBCXX fix, and
    /// no oneDNN convolutions on hosts that hide their cache sizes, the heap kept between steps), whichever test
    /// touches torch first.</summary>
    [ModuleInitializer]
    internal static void Initialize()
    {
        HeapTuning.Apply();
        SegRuntime.Initialize();
    }
}
