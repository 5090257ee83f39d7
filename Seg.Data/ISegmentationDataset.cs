namespace Seg.Data;

/// <summary>
/// A random-access segmentation dataset. <see cref="Get"/> is thread-safe (the loader calls it from several
/// worker threads) and returns a new <see cref="SegmentationSample"/> that the caller owns.
/// </summary>
public interface ISegmentationDataset
{
    /// <summary>Number of samples in the split.</summary>
    int Count { get; }

    /// <summary>Number of classes C; valid labels are 0..C-1 plus <see cref="IgnoreIndex"/>.</summary>
    int NumClasses { get; }

    /// <summary>Label of pixels that count for no class (255 by default).</summary>
    long IgnoreIndex { get; }

    /// <summary>One name per class, index = label.</summary>
    IReadOnlyList<string> ClassNames { get; }

    /// <summary>One RGB colour per class, index = label, for colour masks and overlays.</summary>
    IReadOnlyList<(byte R, byte G, byte B)> Palette { get; }

    /// <summary>Reads sample <paramref name="index"/> (0 ≤ index &lt; Count).</summary>
    /// <exception cref="BadSampleException">The sample's files are unreadable or inconsistent (message names the
    /// file and value), unless the dataset was made with <see cref="BadSampleMode.Skip"/>.</exception>
    SegmentationSample Get(int index);
}
