namespace Seg.Data.Datasets;

/// <summary>Cityscapes' 19 training classes: names, colours, and the map from the 34 label ids to train ids.</summary>
public static class CityscapesClasses
{
    /// <summary>The 19 train-id class names.</summary>
    public static readonly IReadOnlyList<string> Names =
    [
        "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
        "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
    ];

    /// <summary>Cityscapes' official colours for the 19 train ids.</summary>
    public static readonly IReadOnlyList<(byte R, byte G, byte B)> Palette =
    [
        (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
        (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
        (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
    ];

    /// <summary>The label id of each train id (cityscapesScripts' labels.py); every other label id is ignored.</summary>
    public static readonly IReadOnlyList<int> LabelIdOfTrainId = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33];

    /// <summary>A 256-entry lookup table: label id → train id, <paramref name="ignoreIndex"/> for the rest.</summary>
    public static byte[] TrainIdTable(byte ignoreIndex)
    {
        var table = Enumerable.Repeat(ignoreIndex, 256).ToArray();
        for (int t = 0; t < LabelIdOfTrainId.Count; t++) table[LabelIdOfTrainId[t]] = (byte)t;
        return table;
    }
}
