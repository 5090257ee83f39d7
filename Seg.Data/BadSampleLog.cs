namespace Seg.Data;

/// <summary>
/// Thread-safe record of the samples a dataset skipped under <see cref="BadSampleMode.Skip"/>, for the trainer's
/// warning: how many distinct files were bad, how often a read was skipped, the first messages, and an event
/// raised for each skip.
/// </summary>
public sealed class BadSampleLog
{
    const int MaxKeptMessages = 20;
    readonly object gate = new();
    readonly List<string> messages = [];
    readonly HashSet<string> files = [];
    int events;

    /// <summary>Raised (on the thread that read the sample) each time a sample is skipped.</summary>
    public event Action<BadSampleException>? Skipped;

    /// <summary>How many distinct bad files were met.</summary>
    public int Count
    {
        get { lock (gate) return files.Count; }
    }

    /// <summary>How many reads were skipped (a dataset reads a bad sample once; several dataset objects over the same
    /// files may each meet it).</summary>
    public int Events => Volatile.Read(ref events);

    /// <summary>The first messages (at most 20), each naming the file and the value at fault.</summary>
    public IReadOnlyList<string> Messages
    {
        get { lock (gate) return messages.ToArray(); }
    }

    internal void Add(BadSampleException e)
    {
        lock (gate)
        {
            events++;
            if (files.Add(e.File) && messages.Count < MaxKeptMessages) messages.Add(e.Message);
        }
        Skipped?.Invoke(e);
    }
}
