namespace Seg.Onnx;

/// <summary>
/// How <see cref="OnnxSegmenter"/> predicts one image, as Seg's <c>eval</c> section does: the whole image in one
/// run, or overlapping windows whose logits are averaged (<c>eval.mode: slide</c>, <c>eval.window</c>,
/// <c>eval.stride</c>), optionally averaged with the prediction of the horizontally flipped image (<c>eval.flip</c>).
/// </summary>
public sealed record OnnxInferenceSettings
{
    /// <summary>One run on the whole image, no flip.</summary>
    public static OnnxInferenceSettings WholeImage { get; } = new();

    /// <summary>Sliding windows instead of the whole image.</summary>
    public bool Slide { get; init; }

    /// <summary>Window size (sliding mode).</summary>
    public (int Height, int Width) Window { get; init; } = (512, 512);

    /// <summary>Distance between window origins (sliding mode); the last window is flush with the border.</summary>
    public (int Height, int Width) Stride { get; init; } = (341, 341);

    /// <summary>Average the class probabilities with those of the horizontally flipped image.</summary>
    public bool Flip { get; init; }

    /// <summary>Checks the sizes.</summary>
    /// <exception cref="ArgumentException">A window or stride below 1.</exception>
    public OnnxInferenceSettings Validated()
    {
        if (Slide && (Window.Height < 1 || Window.Width < 1 || Stride.Height < 1 || Stride.Width < 1))
            throw new ArgumentException($"sliding window {Window.Height}x{Window.Width} with stride {Stride.Height}x{Stride.Width}: sizes must be positive");
        return this;
    }
}
