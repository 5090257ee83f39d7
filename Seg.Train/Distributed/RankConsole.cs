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

    /// <summary>Writes <paramref name="prefix"/> at the start of every line, a whole line per write (so that lines of
    /// ranks that share the launcher's stderr do not interleave within a line).</summary>
    sealed class PrefixWriter(TextWriter inner, string prefix) : TextWriter
    {
        readonly StringBuilder line = new();

        public override Encoding Encoding => inner.Encoding;

        public override void Write(char value)
        {
            if (value == '\r') return;
            if (value != '\n')
            {
                line.Append(value);
                return;
            }
            inner.Write(prefix + line + "\n");
            inner.Flush();
            line.Clear();
        }

        public override void Flush()
        {
            if (line.Length > 0)
            {
                inner.Write(prefix + line);
                line.Clear();
            }
            inner.Flush();
        }
    }
}
