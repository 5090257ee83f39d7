using System.Runtime.CompilerServices;

// The tests compare the CPU kernel of the Lovász weights with the device-generic path directly.
[assembly: InternalsVisibleTo("Seg.Tests")]
