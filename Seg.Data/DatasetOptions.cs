namespace Seg.Data;

/// <summary>
/// What <see cref="DatasetFactory.Create"/> builds; mirrors the config's <c>data</c> keys
/// (<c>type</c>, <c>root</c>, <c>split</c>, <c>num_classes</c>, <c>ignore_index</c>, <c>size</c>, <c>count</c>,
/// <c>seed</c>, <c>on_bad_sample</c>, <c>class_names</c>).
/// </summary>
public sealed record DatasetOptions
{
    /// <summary>One of <see cref="DatasetFactory.Types"/>.</summary>
    public string Type { get; init; } = "shapes";

    /// <summary>Dataset root directory (folder, voc, cityscapes; optional for fmnist_scenes, which defaults to
    /// Debian's <c>/usr/share/datasets/fashion-mnist</c>).</summary>
    public string? Root { get; init; }

    /// <summary>Split name: <c>train</c> or <c>val</c> (voc also takes any list in <c>ImageSets/Segmentation</c>,
    /// e.g. <c>train_aug</c>; cityscapes also <c>test</c>).</summary>
    public string Split { get; init; } = "train";

    /// <summary>Number of classes; fixed by the dataset type except for <c>folder</c>, where it is required
    /// (or inferred from the masks when left out).</summary>
    public int? NumClasses { get; init; }

    /// <summary>Label of unlabelled pixels.</summary>
    public long IgnoreIndex { get; init; } = 255;

    /// <summary>Side of the square images of the procedural datasets (shapes, fmnist_scenes).</summary>
    public int Size { get; init; } = 128;

    /// <summary>Number of samples of a procedural dataset's split (default 2000 for train, 200 otherwise).</summary>
    public int? Count { get; init; }

    /// <summary>Seed of the procedural datasets: sample i of a split is a function of (seed, split, i).</summary>
    public int Seed { get; init; }

    /// <summary>What to do with a bad sample: throw (default) or skip and count it.</summary>
    public BadSampleMode OnBadSample { get; init; } = BadSampleMode.Error;

    /// <summary>Class names for <c>folder</c> (default <c>class0</c>, <c>class1</c>, …).</summary>
    public IReadOnlyList<string>? ClassNames { get; init; }
}
