using System.Text;

namespace Seg.Train.Distributed;

/// <summary>
/// Console roles in a data-parallel job: rank 0 prints as one process does (progress, notes, results); the
/// other ranks print nothing on stdout, and each line they write to stderr (errors, warnings) starts with
/// <c>rank N: </c>, so that a failure on rank 3 reads as such in the launcher's merged output.
/// </summary>
public static class RankConsole
{
    /// <summary>Sets <see cref="Console.Out"/> and <see cref="Console.Error"/> for rank <paramref name="rank"/>.</summary>
    public static void Apply(int rank)
    {
        if (rank == 0) return;
        Console.SetOut(TextWriter.Null);
        Console.SetError(TextWriter.Synchronized(new PrefixWriter(Console.Error, $"rank {rank}: ")));
    }

    /// <summary>Writes <paramref name="prefix"/> at the start of every line.</summary>
    sealed class PrefixWriter(TextWriter inner, string prefix) : TextWriter
    {
        bool atLineStart = true;

        public override Encoding Encoding => inner.Encoding;

        public override void Write(char value)
        {
            if (atLineStart && value != '\r') inner.Write(prefix);
            inner.Write(value);
            atLineStart = value == '\n';
            if (atLineStart) inner.Flush();
        }

        public override void Flush() => inner.Flush();
    }
}
