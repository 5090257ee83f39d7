namespace Seg.Data.Datasets;

/// <summary>Pascal VOC 2012's 21 class names and its 256-colour mask palette.</summary>
public static class VocClasses
{
    /// <summary>The 21 VOC class names, label order.</summary>
    public static readonly IReadOnlyList<string> Names =
    [
        "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
        "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
    ];

    /// <summary>
    /// The VOC palette for all 256 indices (index 255, the border, is (224, 224, 192)). VOC's devkit spreads the
    /// bits of the index over the channels: bit 3k of the index goes to red bit 7-k, bit 3k+1 to green, 3k+2 to blue.
    /// </summary>
    public static readonly IReadOnlyList<(byte R, byte G, byte B)> Palette = Enumerable.Range(0, 256).Select(Colour).ToArray();

    static (byte R, byte G, byte B) Colour(int index)
    {
        int r = 0, g = 0, b = 0, c = index;
        for (int k = 0; k < 8; k++, c >>= 3)
        {
            r |= (c & 1) << (7 - k);
            g |= ((c >> 1) & 1) << (7 - k);
            b |= ((c >> 2) & 1) << (7 - k);
        }
        return ((byte)r, (byte)g, (byte)b);
    }
}
