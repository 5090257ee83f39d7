namespace Seg.Data.Datasets;

/// <summary>An image file, its mask file, and the sample id (the shared file stem).</summary>
public sealed record FileSample(string ImagePath, string MaskPath, string Id);
