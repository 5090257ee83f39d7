using System.Runtime.InteropServices;
using OpenCvSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Data;

/// <summary>
/// Reads, transforms and packs the samples of one batch into CPU tensors: BGR HWC Mats become RGB CHW float32
/// (8-bit images are scaled to [0, 1]), masks become int64.
/// </summary>
internal sealed class BatchBuilder(ISegmentationDataset dataset, TransformPipeline transforms, int seed)
{
    public SegmentationBatch Build(BatchJob job)
    {
        var ids = new string[job.Indices.Length];
        Tensor? images = null, labels = null;
        try
        {
            int h = 0, w = 0;
            for (int b = 0; b < job.Indices.Length; b++)
            {
                int index = job.Indices[b];
                using var raw = dataset.Get(index);
                var done = transforms.Apply(raw, seed, job.Epoch, index, dataset.IgnoreIndex);
                try
                {
                    ids[b] = done.Id;
                    if (images is null)
                    {
                        (h, w) = (done.Image.Rows, done.Image.Cols);
                        images = empty([job.Indices.Length, 3, h, w], ScalarType.Float32);
                        labels = empty([job.Indices.Length, h, w], ScalarType.Int64);
                        // On the consumer's thread (no workers) a step's dispose scope may be open: the batch outlives it.
                        images.DetachFromDisposeScope();
                        labels.DetachFromDisposeScope();
                    }
                    else if (done.Image.Rows != h || done.Image.Cols != w)
                        throw new InvalidOperationException(
                            $"batch of iteration {job.Iteration}: sample '{done.Id}' is {done.Image.Cols}x{done.Image.Rows} after transforms but '{ids[0]}' is {w}x{h}; " +
                            "add a 'resize' or 'random_crop' transform or use batch size 1");
                    WriteImage(done.Image, MemoryMarshal.Cast<byte, float>(images.bytes).Slice(b * 3 * h * w, 3 * h * w), done.Id);
                    WriteMask(done.Mask, MemoryMarshal.Cast<byte, long>(labels!.bytes).Slice(b * h * w, h * w), done.Id, h, w);
                }
                finally
                {
                    if (!ReferenceEquals(done.Image, raw.Image)) done.Image.Dispose();
                    if (!ReferenceEquals(done.Mask, raw.Mask)) done.Mask.Dispose();
                }
            }
            return new SegmentationBatch(images!, labels!, ids, job.Indices, job.Iteration, job.Epoch);
        }
        catch
        {
            images?.Dispose();
            labels?.Dispose();
            throw;
        }
    }

    static unsafe void WriteImage(Mat image, Span<float> chw, string id)
    {
        int rows = image.Rows, cols = image.Cols, plane = rows * cols;
        var type = image.Type();
        if (type != MatType.CV_32FC3 && type != MatType.CV_8UC3)
            throw new InvalidOperationException($"sample '{id}': image type {type} is neither CV_8UC3 nor CV_32FC3 after transforms");
        fixed (float* dst = chw)
        {
            float* r = dst, g = dst + plane, bl = dst + 2 * plane;
            for (int y = 0; y < rows; y++)
            {
                int o = y * cols;
                if (type == MatType.CV_32FC3)
                {
                    float* src = (float*)image.Ptr(y);
                    for (int x = 0; x < cols; x++) { bl[o + x] = src[3 * x]; g[o + x] = src[3 * x + 1]; r[o + x] = src[3 * x + 2]; }
                }
                else
                {
                    byte* src = (byte*)image.Ptr(y);
                    const float scale = 1f / 255f;
                    for (int x = 0; x < cols; x++) { bl[o + x] = src[3 * x] * scale; g[o + x] = src[3 * x + 1] * scale; r[o + x] = src[3 * x + 2] * scale; }
                }
            }
        }
    }

    static unsafe void WriteMask(Mat mask, Span<long> hw, string id, int h, int w)
    {
        if (mask.Rows != h || mask.Cols != w)
            throw new InvalidOperationException($"sample '{id}': mask is {mask.Cols}x{mask.Rows} but image is {w}x{h} after transforms");
        var type = mask.Type();
        fixed (long* dst = hw)
            for (int y = 0; y < h; y++)
            {
                long* d = dst + y * w;
                if (type == MatType.CV_8UC1) { byte* s = (byte*)mask.Ptr(y); for (int x = 0; x < w; x++) d[x] = s[x]; }
                else if (type == MatType.CV_32SC1) { int* s = (int*)mask.Ptr(y); for (int x = 0; x < w; x++) d[x] = s[x]; }
                else throw new InvalidOperationException($"sample '{id}': mask type {type} is neither CV_8UC1 nor CV_32SC1");
            }
    }
}
