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

    /// <summary>The largest window side accepted (pixels). The memory a window takes is checked too, against
    /// <see cref="OnnxSegmenterOptions.MaxImageBytes"/>, when a segmenter loads.</summary>
    public const int MaxWindowSide = 16384;

    /// <summary>Checks the sizes, whether or not <see cref="Slide"/> is on (a file's settings are taken as a whole).</summary>
    /// <exception cref="ArgumentException">A window or stride below 1, a window side above <see cref="MaxWindowSide"/>,
    /// or a stride larger than the window (pixels between windows would get no prediction).</exception>
    public OnnxInferenceSettings Validated()
    {
        var what = $"window {Window.Height}x{Window.Width} with stride {Stride.Height}x{Stride.Width}";
        if (Window.Height < 1 || Window.Width < 1 || Stride.Height < 1 || Stride.Width < 1)
            throw new ArgumentException($"{what}: sizes must be positive");
        if (Window.Height > MaxWindowSide || Window.Width > MaxWindowSide)
            throw new ArgumentException($"{what}: a window side may be at most {MaxWindowSide}");
        if (Stride.Height > Window.Height || Stride.Width > Window.Width)
            throw new ArgumentException($"{what}: the stride may not exceed the window, or pixels between windows get no prediction");
        return this;
    }
}
