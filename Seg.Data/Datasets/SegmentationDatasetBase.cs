namespace Seg.Data.Datasets;

/// <summary>
/// Shared behaviour of Seg's datasets: metadata, index checks, and the <see cref="BadSampleMode.Skip"/> policy
/// (a bad sample is replaced by the next readable index, so that a run stays deterministic, logged in
/// <see cref="BadSamples"/>, and not read again by this dataset object).
/// </summary>
public abstract class SegmentationDatasetBase : ISegmentationDataset
{
    /// <summary>Sets the metadata every dataset has.</summary>
    protected SegmentationDatasetBase(IReadOnlyList<string> classNames, IReadOnlyList<(byte R, byte G, byte B)> palette,
        long ignoreIndex, BadSampleMode onBadSample)
    {
        if (palette.Count < classNames.Count)
            throw new ArgumentException($"palette has {palette.Count} colours for {classNames.Count} classes", nameof(palette));
        ClassNames = classNames;
        Palette = palette;
        IgnoreIndex = ignoreIndex;
        OnBadSample = onBadSample;
    }

    /// <inheritdoc/>
    public abstract int Count { get; }

    /// <inheritdoc/>
    public int NumClasses => ClassNames.Count;

    /// <inheritdoc/>
    public long IgnoreIndex { get; }

    /// <inheritdoc/>
    public IReadOnlyList<string> ClassNames { get; }

    /// <inheritdoc/>
    public IReadOnlyList<(byte R, byte G, byte B)> Palette { get; }

    /// <summary>Error or skip.</summary>
    public BadSampleMode OnBadSample { get; }

    /// <summary>Samples skipped so far (also those dropped while listing the files).</summary>
    public BadSampleLog BadSamples { get; } = new();

    readonly System.Collections.Concurrent.ConcurrentDictionary<int, bool> knownBad = new();

    /// <inheritdoc/>
    public SegmentationSample Get(int index)
    {
        if ((uint)index >= (uint)Count)
            throw new ArgumentOutOfRangeException(nameof(index), index, $"dataset has {Count} samples");
        for (int attempt = 0; attempt < Count; attempt++)
        {
            int i = (index + attempt) % Count;
            // A sample found bad once stays skipped for the rest of the run: it is not read (nor a bomb decoded) again.
            if (knownBad.ContainsKey(i)) continue;
            try
            {
                return Load(i);
            }
            catch (BadSampleException e) when (OnBadSample == BadSampleMode.Skip)
            {
                knownBad[i] = true;
                BadSamples.Add(e);
            }
            catch (Exception e) when (OnBadSample == BadSampleMode.Skip && e is not OperationCanceledException)
            {
                // Skip means skip: whatever reading the sample threw (the readers throw BadSampleException, but a
                // decoder or a subclass's mapping may fail otherwise) leaves it out and is counted.
                knownBad[i] = true;
                BadSamples.Add(new BadSampleException($"{Describe()} sample {i}", $"cannot be read ({e.GetType().Name}: {e.Message})", e));
            }
        }
        throw new BadSampleException(Describe(), $"every one of the {Count} samples is bad (on_bad_sample: skip)");
    }

    /// <summary>Reads sample <paramref name="index"/>; throws <see cref="BadSampleException"/> for bad files.</summary>
    protected abstract SegmentationSample Load(int index);

    /// <summary>A short name for messages (root and split).</summary>
    protected abstract string Describe();

    /// <summary>Drops a sample found bad while listing files (skip mode) or throws (error mode).</summary>
    protected void Reject(BadSampleException e)
    {
        if (OnBadSample == BadSampleMode.Error) throw e;
        BadSamples.Add(e);
    }
}
