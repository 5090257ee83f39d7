using System.Runtime.CompilerServices;

// The tests check the PNG decoder's Adler-32 against published values directly.
[assembly: InternalsVisibleTo("Seg.Tests")]
