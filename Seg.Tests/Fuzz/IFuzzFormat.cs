namespace Seg.Tests.Fuzz;

/// <summary>
/// One reader under fuzz: the valid files to mutate, the hand-made hostile files, and how the child process reads a
/// case. To fuzz a new reader, implement this and add it to <see cref="FuzzFormats.All"/>; the mutator, the child
/// process, the limits and the contract check are shared (see docs/robustness.md).
/// </summary>
/// <remarks>
/// The contract every format is held to (<see cref="FuzzOutcome"/>): reading a case either succeeds, or throws
/// <see cref="InvalidDataException"/> (weights) or <see cref="Seg.Data.BadSampleException"/> (dataset files;
/// .NET seals InvalidDataException) whose message contains the case's path, or an I/O exception
/// naming the path; never another exception type, a crash, a hang past the time limit, or memory past the limit.
/// </remarks>
public interface IFuzzFormat
{
    /// <summary>Unique short name; it is how the child finds the format, and it starts every case id.</summary>
    string Name { get; }

    /// <summary>The file name each case is written under (in a fresh folder per case): readers that sniff the
    /// extension or need a fixed name (IDX) see what they expect.</summary>
    string FileName { get; }

    /// <summary>Valid files to mutate (from the committed fixtures), each with the length fields worth editing.</summary>
    IReadOnlyList<FuzzSeed> Seeds();

    /// <summary>Hand-made hostile files (the crafted cases of issue 13 and the like); every one runs in every
    /// mode, the short default subset included.</summary>
    IEnumerable<FuzzCase> Crafted();

    /// <summary>
    /// Runs in the child process: reads <paramref name="path"/> through the reader under test, releases what it got,
    /// and returns a digest of what was read (names, shapes, values) so that a mutated file that reads "fine" can be
    /// told from one that reads the seed's content. Throws whatever the reader throws. It may write sibling files
    /// next to <paramref name="path"/> (a label file, a dataset layout).
    /// </summary>
    string Read(string path);

    /// <summary>
    /// Format-aware random mutations, <paramref name="count"/> of them (fewer is fine): edits a byte-level mutator
    /// cannot make without breaking an outer check first, e.g. a number in a JSON header with the header length kept
    /// right, or a pickle opcode's length inside a zip whose CRC is recomputed. Default: none.
    /// </summary>
    IEnumerable<FuzzCase> Structured(Random rng, int count) => [];

    /// <summary>Exception types besides InvalidDataException and BadSampleException that count as a typed refusal
    /// for this format when they name the file (a config loader's ConfigException, say). Default: none.</summary>
    IReadOnlyList<Type> RefusalTypes => [];

    /// <summary>Turns mutated bytes into the file written to disk. Identity for most formats; a format that fuzzes
    /// an inner layer (the pickle inside a .pth zip) wraps the bytes here, so that the outer checks pass and the inner
    /// reader is reached.</summary>
    byte[] Encode(byte[] mutated) => mutated;
}

/// <summary>A file to mutate, normally a valid one.</summary>
/// <param name="Name">Short name in case ids (e.g. the fixture's file name).</param>
/// <param name="Bytes">The file (before <see cref="IFuzzFormat.Encode"/>).</param>
/// <param name="LengthFields">Where the file declares lengths, counts, sizes or offsets: the mutator writes
/// boundary values (0, −1, 2^31−1, 2^32, 2^62, the file size ± 1, …) there.</param>
/// <param name="Readable">False for a seed the reader must refuse as it is (a pickle that calls os.system).</param>
public sealed record FuzzSeed(string Name, byte[] Bytes, IReadOnlyList<LengthField> LengthFields, bool Readable = true);

/// <summary>A length/count/offset field of a seed.</summary>
/// <param name="Offset">Byte offset of the field.</param>
/// <param name="Width">1, 2, 4 or 8 bytes (fixed width), or 0 for a LEB128 varint whose current encoding is replaced.</param>
/// <param name="BigEndian">Byte order of a fixed-width field.</param>
/// <param name="What">What the field is, for case ids and reports.</param>
public sealed record LengthField(int Offset, int Width, bool BigEndian, string What);

/// <summary>One file to read, as bytes before <see cref="IFuzzFormat.Encode"/>. <paramref name="Id"/> is unique
/// and stable for a given master seed (format/seed/kind/n).</summary>
public sealed record FuzzCase(string Id, byte[] Bytes);
