namespace Seg.Core.Distributed;

/// <summary>A data-parallel job cannot start or go on: no MPI library, a bad launcher environment, ranks that
/// disagree (config, world size), or a collective that failed. The message is one line naming the cause.</summary>
public sealed class DistributedException : Exception
{
    /// <summary>An error with a one-line <paramref name="message"/>.</summary>
    public DistributedException(string message) : base(message) { }

    /// <summary>An error with a one-line <paramref name="message"/> caused by <paramref name="inner"/>.</summary>
    public DistributedException(string message, Exception inner) : base(message, inner) { }
}
