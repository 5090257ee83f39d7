namespace Seg.Data;

/// <summary>
/// Thread-safe record of the samples a dataset skipped under <see cref="BadSampleMode.Skip"/>, for the trainer's
/// warning: a count, the first messages, and an event raised for each skip.
/// </summary>
public sealed class BadSampleLog
{
    const int MaxKeptMessages = 20;
    readonly object gate = new();
    readonly List<string> messages = [];
    int count;

    /// <summary>Raised (on the thread that read the sample) each time a sample is skipped.</summary>
    public event Action<BadSampleException>? Skipped;

    /// <summary>How many times a sample was skipped (a bad sample read in several epochs counts each time).</summary>
    public int Count => Volatile.Read(ref count);

    /// <summary>The first messages (at most 20), each naming the file and the value at fault.</summary>
    public IReadOnlyList<string> Messages
    {
        get { lock (gate) return messages.ToArray(); }
    }

    internal void Add(BadSampleException e)
    {
        lock (gate)
        {
            count++;
            if (messages.Count < MaxKeptMessages) messages.Add(e.Message);
        }
        Skipped?.Invoke(e);
    }
}
