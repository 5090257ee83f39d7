namespace Seg.Tests.Fuzz;

/// <summary>What reading one case did. The first three keep the contract; the rest break it.</summary>
public enum FuzzOutcome
{
    /// <summary>The file was read (its content may differ from the seed's: see <see cref="FuzzResult.Digest"/>).</summary>
    Read,
    /// <summary><see cref="InvalidDataException"/>, or Seg's <see cref="Seg.Data.BadSampleException"/> for dataset
    /// files (.NET seals InvalidDataException), whose message names the file.</summary>
    Refused,
    /// <summary>FileNotFound/DirectoryNotFound/UnauthorizedAccess or a plain IOException naming the file.</summary>
    IoError,
    /// <summary>One of those whose message does not contain the file's path.</summary>
    Unnamed,
    /// <summary>Any other exception type (Overflow, ArgumentOutOfRange, EndOfStream, ExternalException, …).</summary>
    WrongType,
    /// <summary>OutOfMemoryException in the child, or the child died under its memory limit.</summary>
    OutOfMemory,
    /// <summary>The child process died (a signal, a native abort, a stack overflow).</summary>
    Crash,
    /// <summary>The case ran past the time limit and the child was killed.</summary>
    Timeout,
}

/// <summary>The result of one case.</summary>
/// <param name="Id">The case id.</param>
/// <param name="Outcome">What happened.</param>
/// <param name="Exception">The exception's type name (or the child's exit status for a crash).</param>
/// <param name="Message">The exception's message (first line, shortened), or the child's last stderr for a crash.</param>
/// <param name="Milliseconds">Time the read took in the child (the watchdog's limit for a timeout).</param>
/// <param name="PeakMegabytes">How far the child's peak resident memory rose above its level before the case.</param>
/// <param name="Digest">For <see cref="FuzzOutcome.Read"/>: the format's digest of what was read.</param>
public sealed record FuzzResult(string Id, FuzzOutcome Outcome, string Exception, string Message, double Milliseconds,
    double PeakMegabytes, string Digest)
{
    /// <summary>Whether the case kept the contract.</summary>
    public bool KeepsContract => Outcome is FuzzOutcome.Read or FuzzOutcome.Refused or FuzzOutcome.IoError;

    /// <summary>Classifies what a read threw (null: it returned) against the contract for the file at
    /// <paramref name="path"/>; <paramref name="refusalTypes"/> are the format's own typed refusals.</summary>
    public static FuzzOutcome Classify(Exception? e, string path, IReadOnlyList<Type>? refusalTypes = null) => e switch
    {
        null => FuzzOutcome.Read,
        _ when refusalTypes?.Any(t => t.IsInstanceOfType(e)) == true =>
            e.Message.Contains(path, StringComparison.Ordinal) ? FuzzOutcome.Refused : FuzzOutcome.Unnamed,
        OutOfMemoryException or InsufficientMemoryException => FuzzOutcome.OutOfMemory,
        InvalidDataException or Seg.Data.BadSampleException when e.Message.Contains(path, StringComparison.Ordinal) => FuzzOutcome.Refused,
        InvalidDataException or Seg.Data.BadSampleException => FuzzOutcome.Unnamed,
        // EndOfStreamException is an IOException, but a truncated file is not what it claims: InvalidDataException.
        FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException
            when e.Message.Contains(path, StringComparison.Ordinal) => FuzzOutcome.IoError,
        IOException when e.GetType() == typeof(IOException) && e.Message.Contains(path, StringComparison.Ordinal) => FuzzOutcome.IoError,
        _ => FuzzOutcome.WrongType,
    };
}
