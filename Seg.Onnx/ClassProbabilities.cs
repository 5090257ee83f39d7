using OpenCvSharp;

namespace Seg.Onnx;

/// <summary>Per-pixel class probabilities of one image, [classes, height, width] in row-major order.</summary>
public sealed class ClassProbabilities
{
    /// <summary>Wraps <paramref name="values"/> (not copied).</summary>
    /// <exception cref="ArgumentException">The length is not classes·height·width.</exception>
    /// <param name="classes">Number of classes.</param>
    /// <param name="height">Image height.</param>
    /// <param name="width">Image width.</param>
    /// <param name="values">The probabilities, class-major.</param>
    /// <param name="nonFinitePixels">Pixels whose logits were NaN or infinite (their probabilities are NaN).</param>
    public ClassProbabilities(int classes, int height, int width, float[] values, long nonFinitePixels = 0)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (classes < 1 || height < 1 || width < 1 || values.Length != (long)classes * height * width)
            throw new ArgumentException($"{values.Length} values do not make [{classes}, {height}, {width}] probabilities", nameof(values));
        (Classes, Height, Width, Values, NonFinitePixels) = (classes, height, width, values, nonFinitePixels);
    }

    /// <summary>Pixels whose logits were NaN or infinite (only with <see cref="OnnxSegmenterOptions.AllowNonFiniteLogits"/>;
    /// otherwise such a prediction is an error). Their probabilities are NaN and <see cref="ArgMax"/> gives them −1.</summary>
    public long NonFinitePixels { get; }

    /// <summary>Number of classes.</summary>
    public int Classes { get; }

    /// <summary>Image height.</summary>
    public int Height { get; }

    /// <summary>Image width.</summary>
    public int Width { get; }

    /// <summary>The values, class-major: index (c·Height + y)·Width + x.</summary>
    public float[] Values { get; }

    /// <summary>Probability of class <paramref name="c"/> at row <paramref name="y"/>, column <paramref name="x"/>.</summary>
    public float this[int c, int y, int x] => Values[((long)c * Height + y) * Width + x];

    /// <summary>The most probable class of each pixel (the first one on ties, as torch's argmax), a
    /// <c>CV_32SC1</c> Mat of Height×Width; −1 where a probability is NaN (no class: torch would say the NaN's class).</summary>
    public unsafe Mat ArgMax()
    {
        var labels = new Mat(Height, Width, MatType.CV_32SC1);
        int plane = Height * Width;
        for (int y = 0; y < Height; y++)
        {
            int* row = (int*)labels.Ptr(y);
            for (int x = 0; x < Width; x++)
            {
                int i = y * Width + x, best = 0;
                float bestValue = Values[i];
                bool nan = float.IsNaN(bestValue);
                for (int c = 1; c < Classes; c++)
                {
                    var v = Values[c * plane + i];
                    if (v > bestValue) (best, bestValue) = (c, v);
                    nan |= float.IsNaN(v);
                }
                row[x] = nan ? -1 : best;
            }
        }
        return labels;
    }
}
