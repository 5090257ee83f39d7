namespace Seg.Data.Datasets;

/// <summary>
/// Validation images that are training images too. A <c>folder</c> dataset without <c>images/&lt;split&gt;/</c>
/// sub-folders puts every file in every split, so its validation scores would measure how well the model learnt
/// its training images, not how it does on new ones; the trainer says so loudly instead of scoring it silently.
/// </summary>
public static class SplitOverlap
{
    /// <summary>How many samples of <paramref name="val"/> read the same image file as a sample of
    /// <paramref name="train"/> (0 where either is not file-backed).</summary>
    public static int Count(ISegmentationDataset train, ISegmentationDataset val)
    {
        if (train is not FileDatasetBase t || val is not FileDatasetBase v) return 0;
        var trainImages = t.Samples.Select(s => Path.GetFullPath(s.ImagePath)).ToHashSet(StringComparer.Ordinal);
        return v.Samples.Count(s => trainImages.Contains(Path.GetFullPath(s.ImagePath)));
    }

    /// <summary>A one-line warning when validation images are training images too, naming the count and the fix;
    /// null when the splits are disjoint.</summary>
    public static string? Warning(ISegmentationDataset train, ISegmentationDataset val)
    {
        var shared = Count(train, val);
        if (shared == 0) return null;
        var fix = val is FolderDataset
            ? "a 'folder' dataset without images/<split>/ and masks/<split>/ sub-folders puts every file in every split: " +
              "move held-out images and masks into images/val/ and masks/val/ (and the rest into images/train/, masks/train/)"
            : "check data.train_split and data.val_split";
        return $"{shared} of the {val.Count} validation images are also training images, so validation scores images the model " +
               $"trained on and overstates how it does on new ones; {fix}.";
    }
}
