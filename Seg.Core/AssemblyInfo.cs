using System.Runtime.CompilerServices;

// The tests compare the CPU kernel of the Lovász weights with the device-generic path directly and patch copies of
// the native shim with GlibcxxCompat; the benchmarks time the device-generic path on the CPU beside the kernels.
[assembly: InternalsVisibleTo("Seg.Tests")]
[assembly: InternalsVisibleTo("Seg.Bench")]
