using OpenCvSharp;

namespace Seg.Data;

/// <summary>
/// One (image, mask) pair as a dataset yields it.
/// <para><see cref="Image"/> is HWC 8-bit <b>BGR</b> (OpenCV's own order; every Mat in Seg.Data is BGR, every
/// tensor RGB); after <c>normalize</c> it is HWC float32 BGR. <see cref="Mask"/> is HW <c>CV_8U</c> (or
/// <c>CV_32S</c> when the ignore index does not fit a byte) holding class labels, with the dataset's ignore index
/// for unlabelled pixels.</para>
/// The sample owns both Mats: dispose it when done.
/// </summary>
public sealed record SegmentationSample(OpenCvSharp.Mat Image, OpenCvSharp.Mat Mask, string Id) : IDisposable
{
    /// <summary>Releases both Mats.</summary>
    public void Dispose()
    {
        Image.Dispose();
        Mask.Dispose();
    }
}
