using Seg.Data.Datasets;
using Seg.Platform.Native;

namespace Seg.Data;

/// <summary>Builds a dataset from <see cref="DatasetOptions"/> (the config's <c>data</c> section).</summary>
public static class DatasetFactory
{
    /// <summary>The dataset types <see cref="Create"/> knows: shapes (default), folder, voc, cityscapes, fmnist_scenes.</summary>
    public static IReadOnlyList<string> Types { get; } = ["shapes", "folder", "voc", "cityscapes", "fmnist_scenes"];

    /// <summary>Builds the dataset; for file-backed types this lists (but does not read) the split's files.</summary>
    /// <exception cref="ArgumentException">An unknown type or an option value that does not fit it (message names
    /// the key and lists valid values).</exception>
    /// <exception cref="BadSampleException">A missing root, split list or mask, or an empty split.</exception>
    /// <exception cref="NativeLoadException">OpenCV's native library cannot be loaded on this host (the
    /// message names the missing shared libraries and the package to install).</exception>
    public static ISegmentationDataset Create(DatasetOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        HeadlessOpenCv.EnsureLoaded();
        return options.Type switch
        {
            "shapes" => Procedural(options, ShapesDataset.Names.Count,
                o => new ShapesDataset(ProceduralCount(o), o.Size, o.Seed, o.Split, o.IgnoreIndex)),
            "fmnist_scenes" => Procedural(options, FashionMnistScenesDataset.Names.Count,
                o => new FashionMnistScenesDataset(o.Root, o.Split, ProceduralCount(o), o.Size, o.Seed, o.IgnoreIndex)),
            "folder" => FolderDataset.Open(options),
            "voc" => Fixed(options, VocClasses.Names.Count, VocDataset.Open),
            "cityscapes" => Fixed(options, CityscapesClasses.Names.Count, CityscapesDataset.Open),
            _ => throw new ArgumentException(
                $"data.type '{options.Type}' is not a dataset type; valid types: {string.Join(", ", Types)}", nameof(options)),
        };
    }

    static int ProceduralCount(DatasetOptions o) => o.Count ?? (o.Split == "train" ? 2000 : 200);

    static ISegmentationDataset Procedural(DatasetOptions o, int classes, Func<DatasetOptions, ISegmentationDataset> make)
    {
        if (o.Count is <= 0) throw new ArgumentException($"data.count must be positive, got {o.Count}", nameof(o));
        if (o.Size < 32) throw new ArgumentException($"data.size must be at least 32 pixels for '{o.Type}', got {o.Size}", nameof(o));
        return Fixed(o, classes, make);
    }

    static ISegmentationDataset Fixed(DatasetOptions o, int classes, Func<DatasetOptions, ISegmentationDataset> make)
    {
        if (o.NumClasses is int n && n != classes)
            throw new ArgumentException($"data.num_classes is {n} but dataset type '{o.Type}' has {classes} classes; leave num_classes out or set it to {classes}", nameof(o));
        return make(o);
    }
}
