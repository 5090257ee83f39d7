using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using OpenCvSharp;

namespace Seg.Onnx;

/// <summary>
/// Runs a Seg model exported to ONNX (<c>seg export</c>) with ONNX Runtime, on 8-bit BGR images as OpenCV reads
/// them, with the preprocessing of Seg's validation pipeline (the file's normalisation) and, optionally, the
/// sliding window and flip of Seg's <c>eval</c>. Needs neither TorchSharp nor libtorch. One instance can serve
/// several threads (ONNX Runtime sessions are thread-safe).
/// </summary>
public sealed class OnnxSegmenter : IDisposable
{
    readonly InferenceSession session;
    readonly SessionOptions sessionOptions;
    readonly RunOptions runOptions = new();
    readonly string inputName, outputName;
    // 3×256 input values: plane p (R, G, B) of a byte v is table[p·256 + v], exactly what Seg's loader feeds.
    readonly float[] table;

    OnnxSegmenter(string path, InferenceSession session, SessionOptions sessionOptions, OnnxSegmenterOptions options)
    {
        Path = path;
        this.session = session;
        this.sessionOptions = sessionOptions;
        Metadata = OnnxModelMetadata.Parse(session.ModelMetadata.CustomMetadataMap, path);

        (inputName, var input) = session.InputMetadata.First();
        if (input.ElementDataType != TensorElementType.Float || input.Dimensions.Length != 4 || input.Dimensions[1] is not (3 or -1))
            throw new InvalidDataException($"{path}: input '{inputName}' should be float32 [N,3,H,W], is {Describe(input)}.");
        if (input.Dimensions[2] > 0 && input.Dimensions[3] > 0) StaticSize = (input.Dimensions[2], input.Dimensions[3]);

        (outputName, var output) = session.OutputMetadata.First();
        OutputsLabels = output.ElementDataType == TensorElementType.Int64 && output.Dimensions.Length == 3;
        if (!OutputsLabels && !(output.ElementDataType == TensorElementType.Float && output.Dimensions.Length == 4))
            throw new InvalidDataException($"{path}: output '{outputName}' should be float32 logits [N,C,H,W] or int64 labels [N,H,W], is {Describe(output)}.");
        NumClasses = !OutputsLabels && output.Dimensions[1] > 0 ? output.Dimensions[1] : Metadata.ClassNames.Count;

        Inference = (options.Inference ?? (OutputsLabels ? null : Metadata.Inference) ?? OnnxInferenceSettings.WholeImage).Validated();
        if (OutputsLabels && (Inference.Slide || Inference.Flip))
            throw new ArgumentException($"{path} outputs labels (exported with --argmax): sliding windows and flip average class probabilities, so they need a file exported without --argmax.");
        if (Inference.Slide && StaticSize is { } size && size != Inference.Window)
            throw new ArgumentException($"{path} takes {size.Height}x{size.Width} images only (exported with --static); the sliding window is {Inference.Window.Height}x{Inference.Window.Width}.");

        table = new float[3 * 256];
        for (int p = 0; p < 3; p++)
            for (int v = 0; v < 256; v++)
                table[p * 256 + v] = Metadata.MeanRgb is { } mean && Metadata.StdRgb is { } std
                    ? (float)((v / 255.0 - mean[p]) / std[p]) // Seg.Data's normalize transform
                    : v * (1f / 255f);                         // Seg.Data's loader without normalize
    }

    /// <summary>Opens <paramref name="path"/> with ONNX Runtime and reads its metadata.</summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="InvalidDataException">Not an ONNX model ONNX Runtime can load, or not a segmentation model
    /// (input [N,3,H,W], output [N,C,H,W] or [N,H,W]), or unreadable Seg metadata.</exception>
    /// <exception cref="NotSupportedException">The execution provider is not in the ONNX Runtime package the application references.</exception>
    public static OnnxSegmenter Load(string path, OnnxSegmenterOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        options ??= new OnnxSegmenterOptions();
        if (!File.Exists(path)) throw new FileNotFoundException($"ONNX model not found: {path}", path);
        var sessionOptions = new SessionOptions { IntraOpNumThreads = options.Threads };
        InferenceSession? session = null;
        try
        {
            AddExecutionProvider(sessionOptions, options);
            options.ConfigureSession?.Invoke(sessionOptions);
            try { session = new InferenceSession(path, sessionOptions); }
            catch (OnnxRuntimeException e) { throw new InvalidDataException($"{path}: ONNX Runtime cannot load it: {e.Message}", e); }
            return new OnnxSegmenter(path, session, sessionOptions, options);
        }
        catch
        {
            session?.Dispose();
            sessionOptions.Dispose();
            throw;
        }
    }

    static void AddExecutionProvider(SessionOptions sessionOptions, OnnxSegmenterOptions options)
    {
        try
        {
            switch (options.ExecutionProvider)
            {
                case OnnxExecutionProvider.Cpu: break;
                case OnnxExecutionProvider.Cuda: sessionOptions.AppendExecutionProvider_CUDA(options.DeviceId); break;
                case OnnxExecutionProvider.TensorRT: sessionOptions.AppendExecutionProvider_Tensorrt(options.DeviceId); break;
                default: throw new ArgumentOutOfRangeException(nameof(options), options.ExecutionProvider, "unknown execution provider");
            }
        }
        catch (Exception e) when (e is OnnxRuntimeException or EntryPointNotFoundException or DllNotFoundException)
        {
            throw new NotSupportedException(
                $"ONNX Runtime's {options.ExecutionProvider} execution provider is not available: reference Microsoft.ML.OnnxRuntime.Gpu " +
                $"instead of Microsoft.ML.OnnxRuntime (in this repository: build with -p:SegOnnxRuntime=cuda) and install CUDA 12 and cuDNN 9 ({e.Message})", e);
        }
    }

    /// <summary>The model file.</summary>
    public string Path { get; }

    /// <summary>What the file says about itself (class names, palette, normalisation, …).</summary>
    public OnnxModelMetadata Metadata { get; }

    /// <summary>Whole image or sliding window, and flip, as used by <see cref="Predict"/>.</summary>
    public OnnxInferenceSettings Inference { get; }

    /// <summary>Number of classes (0 when neither the output shape nor the metadata says).</summary>
    public int NumClasses { get; }

    /// <summary>The file ends with an arg-max (exported with <c>--argmax</c>): labels only, no probabilities.</summary>
    public bool OutputsLabels { get; }

    /// <summary>The only input size the file accepts (exported with <c>--static</c>), or null.</summary>
    public (int Height, int Width)? StaticSize { get; }

    /// <summary>The class of each pixel: a <c>CV_32SC1</c> Mat of the image's size (the arg-max of
    /// <see cref="PredictProbabilities"/>, or the file's own labels).</summary>
    /// <param name="bgrImage">An 8-bit image: BGR (<c>CV_8UC3</c>, as <c>Cv2.ImRead</c> gives), grey or BGRA.</param>
    public Mat Predict(Mat bgrImage)
    {
        if (!OutputsLabels)
        {
            return PredictProbabilities(bgrImage).ArgMax();
        }
        var (chw, h, w) = Preprocess(bgrImage);
        CheckStaticSize(h, w);
        using var input = OrtValue.CreateTensorValueFromMemory(chw, [1, 3, h, w]);
        using var results = session.Run(runOptions, [inputName], [input], [outputName]);
        var labels = results[0].GetTensorDataAsSpan<long>();
        var mat = new Mat(h, w, MatType.CV_32SC1);
        var values = new int[h * w];
        for (int i = 0; i < values.Length; i++) values[i] = (int)labels[i];
        mat.SetArray(values);
        return mat;
    }

    /// <summary>Class probabilities of each pixel at the image's size: softmax of the logits, averaged over the
    /// flip when <see cref="Inference"/> says so (as Seg's <c>eval</c> does).</summary>
    /// <param name="bgrImage">An 8-bit image: BGR (<c>CV_8UC3</c>, as <c>Cv2.ImRead</c> gives), grey or BGRA.</param>
    /// <exception cref="InvalidOperationException">The file outputs labels only (<see cref="OutputsLabels"/>).</exception>
    public ClassProbabilities PredictProbabilities(Mat bgrImage)
    {
        if (OutputsLabels)
            throw new InvalidOperationException($"{Path} outputs labels only (exported with --argmax): export without --argmax for probabilities.");
        var (chw, h, w) = Preprocess(bgrImage);
        var (classes, probabilities) = Softmax(Logits(chw, h, w), h * w);
        if (Inference.Flip)
        {
            var flipped = Softmax(FlipWidth(Logits(FlipWidth(chw, 3, h, w), h, w), h, w), h * w).Values;
            for (int i = 0; i < probabilities.Length; i++) probabilities[i] = (probabilities[i] + flipped[i]) / 2;
        }
        return new ClassProbabilities(classes, h, w, probabilities);
    }

    // Logits [C, h, w] of one preprocessed image: one run, or averaged overlapping windows.
    float[] Logits(float[] chw, int h, int w) => Inference.Slide ? Slide(chw, h, w) : Run(chw, h, w);

    float[] Run(float[] chw, int h, int w)
    {
        CheckStaticSize(h, w);
        using var input = OrtValue.CreateTensorValueFromMemory(chw, [1, 3, h, w]);
        using var results = session.Run(runOptions, [inputName], [input], [outputName]);
        var shape = results[0].GetTensorTypeAndShape().Shape;
        if (shape is not [1, _, var oh, var ow] || oh != h || ow != w)
            throw new InvalidDataException($"{Path}: logits for a {h}x{w} image came out [{string.Join(",", shape)}], not [1,C,{h},{w}].");
        return results[0].GetTensorDataAsSpan<float>().ToArray();
    }

    // Seg's sliding window: images smaller than the window are padded with zeros (after normalisation) at the
    // bottom and right; windows every stride, the last flush with the border; overlapping logits averaged.
    float[] Slide(float[] chw, int h, int w)
    {
        var (wh, ww) = Inference.Window;
        int ph = Math.Max(h, wh), pw = Math.Max(w, ww);
        float[]? sum = null;
        var count = new int[ph * pw];
        var window = new float[3 * wh * ww];
        int classes = 0;
        foreach (var y0 in SlidingWindow.Starts(ph, wh, Inference.Stride.Height))
            foreach (var x0 in SlidingWindow.Starts(pw, ww, Inference.Stride.Width))
            {
                Array.Clear(window);
                for (int c = 0; c < 3; c++)
                    for (int y = 0; y < wh && y0 + y < h; y++)
                        Array.Copy(chw, (c * h + y0 + y) * w + x0, window, (c * wh + y) * ww, Math.Clamp(w - x0, 0, ww));
                var logits = Run(window, wh, ww);
                classes = logits.Length / (wh * ww);
                sum ??= new float[classes * ph * pw];
                for (int c = 0; c < classes; c++)
                    for (int y = 0; y < wh; y++)
                        for (int x = 0; x < ww; x++)
                            sum[(c * ph + y0 + y) * pw + x0 + x] += logits[(c * wh + y) * ww + x];
                for (int y = 0; y < wh; y++)
                    for (int x = 0; x < ww; x++)
                        count[(y0 + y) * pw + x0 + x]++;
            }
        var result = new float[classes * h * w];
        for (int c = 0; c < classes; c++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    result[(c * h + y) * w + x] = sum![(c * ph + y) * pw + x] / count[y * pw + x];
        return result;
    }

    void CheckStaticSize(int h, int w)
    {
        if (StaticSize is { } size && (size.Height != h || size.Width != w))
            throw new ArgumentException($"{Path} takes {size.Height}x{size.Width} images only (exported with --static), got {h}x{w}; " +
                "resize the image, use a sliding window of that size, or export without --static.");
    }

    // Softmax over the classes of [C, pixels] logits, in place; returns (C, the same array).
    static (int Classes, float[] Values) Softmax(float[] logits, int pixels)
    {
        int classes = logits.Length / pixels;
        for (int i = 0; i < pixels; i++)
        {
            float max = float.NegativeInfinity;
            for (int c = 0; c < classes; c++) max = Math.Max(max, logits[c * pixels + i]);
            float sum = 0;
            for (int c = 0; c < classes; c++) sum += logits[c * pixels + i] = MathF.Exp(logits[c * pixels + i] - max);
            for (int c = 0; c < classes; c++) logits[c * pixels + i] /= sum;
        }
        return (classes, logits);
    }

    // Mirror of [planes, h, w] along the width, into a new array.
    static float[] FlipWidth(float[] values, int h, int w) => FlipWidth(values, values.Length / (h * w), h, w);

    static float[] FlipWidth(float[] values, int planes, int h, int w)
    {
        var flipped = new float[values.Length];
        for (int row = 0; row < planes * h; row++)
            for (int x = 0; x < w; x++)
                flipped[row * w + x] = values[row * w + w - 1 - x];
        return flipped;
    }

    // RGB planes [3, h, w] of an 8-bit image, through the normalisation table.
    unsafe (float[] Chw, int Height, int Width) Preprocess(Mat image)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (image.Empty()) throw new ArgumentException("the image is empty", nameof(image));
        var type = image.Type();
        var bgr = type == MatType.CV_8UC3 ? image
            : type == MatType.CV_8UC1 ? image.CvtColor(ColorConversionCodes.GRAY2BGR)
            : type == MatType.CV_8UC4 ? image.CvtColor(ColorConversionCodes.BGRA2BGR)
            : throw new ArgumentException($"the image must be 8-bit BGR (CV_8UC3), grey or BGRA, got {type}", nameof(image));
        try
        {
            int h = bgr.Rows, w = bgr.Cols, plane = h * w;
            var chw = new float[3 * plane];
            fixed (float* t = table)
                for (int y = 0; y < h; y++)
                {
                    byte* src = (byte*)bgr.Ptr(y);
                    for (int x = 0; x < w; x++)
                    {
                        int o = y * w + x;
                        chw[o] = t[src[3 * x + 2]];                 // R
                        chw[plane + o] = t[256 + src[3 * x + 1]];   // G
                        chw[2 * plane + o] = t[512 + src[3 * x]];   // B
                    }
                }
            return (chw, h, w);
        }
        finally
        {
            if (!ReferenceEquals(bgr, image)) bgr.Dispose();
        }
    }

    static string Describe(NodeMetadata m) => $"{m.ElementDataType} [{string.Join(",", m.Dimensions)}]";

    /// <summary>Releases the ONNX Runtime session.</summary>
    public void Dispose()
    {
        session.Dispose();
        sessionOptions.Dispose();
        runOptions.Dispose();
    }
}
