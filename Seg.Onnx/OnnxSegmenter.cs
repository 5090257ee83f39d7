using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using OpenCvSharp;
using Seg.Platform.IO;
using Seg.Platform.Native;

namespace Seg.Onnx;

/// <summary>
/// Runs a Seg model exported to ONNX (<c>seg export</c>) with ONNX Runtime, on 8-bit BGR images as OpenCV reads
/// them, with the preprocessing of Seg's validation pipeline (the file's normalisation) and, optionally, the
/// sliding window and flip of Seg's <c>eval</c>. Needs neither TorchSharp nor libtorch. One instance can serve
/// several threads (ONNX Runtime sessions are thread-safe); <see cref="Dispose"/> waits for the calls in flight
/// and later calls throw <see cref="ObjectDisposedException"/>.
/// </summary>
public sealed class OnnxSegmenter : IDisposable
{
    readonly InferenceSession session;
    readonly SessionOptions sessionOptions;
    readonly RunOptions runOptions = new();
    readonly string inputName, outputName;
    readonly long maxImageBytes;
    readonly bool allowNonFinite;
    // 3×256 input values: plane p (R, G, B) of a byte v is table[p·256 + v], exactly what Seg's loader feeds.
    readonly float[] table;
    // Calls in flight, and whether Dispose has begun: Dispose waits until no call holds the session.
    readonly object gate = new();
    int inFlight;
    bool disposed;

    OnnxSegmenter(string path, InferenceSession session, SessionOptions sessionOptions, OnnxSegmenterOptions options, OnnxModelMetadata metadata)
    {
        Path = path;
        this.session = session;
        this.sessionOptions = sessionOptions;
        Metadata = metadata;
        maxImageBytes = options.MaxImageBytes;
        allowNonFinite = options.AllowNonFiniteLogits;

        if (session.InputMetadata.Count != 1)
            throw new InvalidDataException($"{path}: the model has {session.InputMetadata.Count} required inputs " +
                $"({string.Join(", ", session.InputMetadata.Keys.Select(k => $"'{k}'"))}); a Seg segmentation model takes one image tensor.");
        (inputName, var input) = session.InputMetadata.First();
        if (input.ElementDataType != TensorElementType.Float || input.Dimensions.Length != 4 || input.Dimensions[1] is not (3 or -1))
            throw new InvalidDataException($"{path}: input '{inputName}' should be float32 [N,3,H,W], is {Describe(input)}.");
        if (input.Dimensions[2] > 0 && input.Dimensions[3] > 0) StaticSize = (input.Dimensions[2], input.Dimensions[3]);

        (outputName, var output) = session.OutputMetadata.First();
        OutputsLabels = output.ElementDataType == TensorElementType.Int64 && output.Dimensions.Length == 3;
        if (!OutputsLabels && !(output.ElementDataType == TensorElementType.Float && output.Dimensions.Length == 4))
            throw new InvalidDataException($"{path}: output '{outputName}' should be float32 logits [N,C,H,W] or int64 labels [N,H,W], is {Describe(output)}.");
        long channels = OutputsLabels ? 0 : output.Dimensions[1];
        Metadata.CheckClasses(channels, path);
        NumClasses = channels > 0 ? (int)channels : Metadata.DeclaredClasses;

        Inference = options.Inference ?? (OutputsLabels ? null : Metadata.Inference) ?? OnnxInferenceSettings.WholeImage;
        if (OutputsLabels && (Inference.Slide || Inference.Flip))
            throw new ArgumentException($"{path} outputs labels (exported with --argmax): sliding windows and flip average class probabilities, so they need a file exported without --argmax.");
        // A window from the file is the file's fault (InvalidDataException); one from the options, the caller's.
        Exception Refuse(string message) => options.Inference is null ? new InvalidDataException(message) : new ArgumentException(message, nameof(options));
        var windowSource = options.Inference is null ? $"metadata '{OnnxModelMetadata.Keys.EvalWindow}'" : "OnnxSegmenterOptions.Inference.Window";
        if (Inference.Slide && StaticSize is { } size && size != Inference.Window)
            throw Refuse($"{path} takes {size.Height}x{size.Width} images only (exported with --static); the sliding window ({windowSource}) is {Inference.Window.Height}x{Inference.Window.Width}.");
        PipelineBytesPerPixel = PerPixel(OutputsLabels, Math.Max(NumClasses, 1), Inference);
        if (Inference.Slide && WindowBytes > maxImageBytes)
            throw Refuse($"{path}: the sliding window {Inference.Window.Height}x{Inference.Window.Width} ({windowSource}) " +
                $"needs {WindowBytes} bytes, over OnnxSegmenterOptions.MaxImageBytes ({maxImageBytes}).");

        table = new float[3 * 256];
        for (int p = 0; p < 3; p++)
            for (int v = 0; v < 256; v++)
                table[p * 256 + v] = Metadata.MeanRgb is { } mean && Metadata.StdRgb is { } std
                    ? (float)((v / 255.0 - mean[p]) / std[p]) // Seg.Data's normalize transform
                    : v * (1f / 255f);                         // Seg.Data's loader without normalize
    }

    /// <summary>Opens <paramref name="path"/> with ONNX Runtime and reads its metadata. Before ONNX Runtime sees
    /// the file: it must be a regular file, its Seg metadata is read from the file (at most
    /// 1024 <c>metadata_props</c> entries) and checked (ranges, class names against palette), and the graph's
    /// SHA-256 must match the file's <c>graph_sha256</c> when it has one. Then the graph is checked against the
    /// metadata: one required input [N,3,H,W], as many output channels as class names and colours.</summary>
    /// <exception cref="ArgumentException">Options out of range (threads, image budget, sliding window), or settings
    /// the file cannot serve (sliding window on an arg-max or static file).</exception>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="IOException">Not a regular file (a FIFO, a device), or unreadable.</exception>
    /// <exception cref="InvalidDataException">Not an ONNX model ONNX Runtime can load, or not a segmentation model
    /// (one input [N,3,H,W], output [N,C,H,W] or [N,H,W]), or Seg metadata that is unreadable, out of range,
    /// inconsistent with itself or the graph, or a graph whose SHA-256 is not the one recorded. Names the file.</exception>
    /// <exception cref="NotSupportedException">The execution provider is not in the ONNX Runtime package the application references.</exception>
    /// <exception cref="NativeLoadException">OpenCV's native library does not load on this host, even without its GUI
    /// libraries (see <see cref="HeadlessOpenCv"/>); the message names what is missing and the <c>apt-get</c> line.</exception>
    public static OnnxSegmenter Load(string path, OnnxSegmenterOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        options ??= new OnnxSegmenterOptions();
        if (options.Threads < 0 || options.Threads > OnnxSegmenterOptions.MaxThreads)
            throw new ArgumentOutOfRangeException(nameof(options), options.Threads,
                $"OnnxSegmenterOptions.Threads must be 0 (ONNX Runtime's default) to {OnnxSegmenterOptions.MaxThreads} (Environment.ProcessorCount), got {options.Threads}.");
        if (options.MaxImageBytes < 1)
            throw new ArgumentOutOfRangeException(nameof(options), options.MaxImageBytes, "OnnxSegmenterOptions.MaxImageBytes must be positive.");
        try { options.Inference?.Validated(); }
        catch (ArgumentException e) { throw new ArgumentException($"OnnxSegmenterOptions.Inference: {e.Message}.", nameof(options), e); }
        FileChecks.RequireRegularFile(path, "ONNX model");
        HeadlessOpenCv.EnsureLoaded();   // the images come and go as OpenCV Mats

        var (props, graphSha256) = OnnxModelFile.Read(path, OnnxModelMetadata.Keys.All);
        var metadata = OnnxModelMetadata.Parse(props, path);
        if (metadata.GraphSha256 is { } recorded && recorded != graphSha256)
            throw new InvalidDataException($"{path}: the graph's SHA-256 is {graphSha256 ?? "(no graph)"}, not the {recorded} recorded in " +
                $"metadata '{OnnxModelMetadata.Keys.GraphSha256}': the weights or the graph changed after export (a corrupt copy?).");

        var sessionOptions = new SessionOptions { IntraOpNumThreads = options.Threads };
        InferenceSession? session = null;
        try
        {
            AddExecutionProvider(sessionOptions, options);
            options.ConfigureSession?.Invoke(sessionOptions);
            try { session = new InferenceSession(path, sessionOptions); }
            catch (OnnxRuntimeException e) { throw new InvalidDataException($"{path}: ONNX Runtime cannot load it: {e.Message}", e); }
            return new OnnxSegmenter(path, session, sessionOptions, options, metadata);
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

    /// <summary>Whole image or sliding window, and flip, as used by <see cref="Predict(Mat)"/>.</summary>
    public OnnxInferenceSettings Inference { get; }

    /// <summary>Number of classes (0 when neither the output shape nor the metadata says).</summary>
    public int NumClasses { get; }

    /// <summary>The file ends with an arg-max (exported with <c>--argmax</c>): labels only, no probabilities.</summary>
    public bool OutputsLabels { get; }

    /// <summary>The only input size the file accepts (exported with <c>--static</c>), or null.</summary>
    public (int Height, int Width)? StaticSize { get; }

    /// <summary>Bytes <see cref="Predict(Mat)"/> allocates per pixel of an image with these settings (input tensor,
    /// logits, probabilities and labels, times two with flip; the sliding window's sums at the padded size), counted
    /// against <see cref="OnnxSegmenterOptions.MaxImageBytes"/> before anything is allocated. The model's own
    /// activations inside ONNX Runtime are not counted.</summary>
    public long PipelineBytesPerPixel { get; }

    // Input, logits and labels of one run.
    static long PerPixel(bool labels, long classes, OnnxInferenceSettings inference)
    {
        if (labels) return 12 + 8 + 4 + 4; // input; int64 labels; their int copy and the Mat
        long run = 4 * classes * (inference.Slide ? 3 : 1) + (inference.Slide ? 4 : 0); // logits (slide: window sums, result, counts)
        return 12 + run + (inference.Flip ? 12 + run + 4 * classes : 0) + 4; // input; flip: input, logits, mirrored copy; labels
    }

    // One window's input and logits (allocated once per image) on top of the per-pixel cost of the padded image.
    long WindowBytes => (long)Inference.Window.Height * Inference.Window.Width * (PipelineBytesPerPixel + 12 + 4L * Math.Max(NumClasses, 1));

    // Refuses an image whose pipeline would exceed the budget, before allocating it.
    void CheckBudget(int h, int w)
    {
        long ph = Inference.Slide ? Math.Max(h, Inference.Window.Height) : h, pw = Inference.Slide ? Math.Max(w, Inference.Window.Width) : w;
        long bytes = ph * pw * PipelineBytesPerPixel + (Inference.Slide ? WindowBytes : 0);
        if (bytes > maxImageBytes)
            throw new ArgumentException($"a {w}x{h} image needs {bytes} bytes to predict with {Path} ({PipelineBytesPerPixel} per pixel), " +
                $"over OnnxSegmenterOptions.MaxImageBytes ({maxImageBytes}); resize it, or raise the limit.", "bgrImage");
    }

    /// <summary>The class of each pixel: a <c>CV_32SC1</c> Mat of the image's size (the arg-max of
    /// <see cref="PredictProbabilities(Mat)"/>, or the file's own labels); −1 for pixels with NaN or infinite logits
    /// when <see cref="OnnxSegmenterOptions.AllowNonFiniteLogits"/> allows them.</summary>
    /// <param name="bgrImage">An 8-bit image: BGR (<c>CV_8UC3</c>, as <c>Cv2.ImRead</c> gives), grey or BGRA.</param>
    /// <exception cref="ObjectDisposedException">After <see cref="Dispose"/>.</exception>
    /// <exception cref="ArgumentException">An image of another type, or too large for <see cref="OnnxSegmenterOptions.MaxImageBytes"/>.</exception>
    /// <exception cref="InvalidDataException">The model gave NaN or infinite logits, labels outside its classes,
    /// or an output of the wrong shape (names the file).</exception>
    /// <exception cref="InvalidOperationException">ONNX Runtime failed running the model (names the file).</exception>
    public Mat Predict(Mat bgrImage)
    {
        if (!OutputsLabels)
        {
            return PredictProbabilities(bgrImage).ArgMax();
        }
        Enter();
        try
        {
            var (chw, h, w) = Preprocess(bgrImage);
            CheckStaticSize(h, w);
            using var input = OrtValue.CreateTensorValueFromMemory(chw, [1, 3, h, w]);
            using var results = RunSession(input, h, w);
            var labels = results[0].GetTensorDataAsSpan<long>();
            if (labels.Length != (long)h * w)
                throw new InvalidDataException($"{Path}: labels for a {h}x{w} image came out [{string.Join(",", results[0].GetTensorTypeAndShape().Shape)}], not [1,{h},{w}].");
            var values = new int[h * w];
            for (int i = 0; i < values.Length; i++)
            {
                if ((ulong)labels[i] >= (ulong)Math.Max(NumClasses, 1) && NumClasses > 0)
                    throw new InvalidDataException($"{Path}: the model gave label {labels[i]} at pixel {i} (row {i / w}), outside its {NumClasses} classes.");
                values[i] = (int)labels[i];
            }
            var mat = new Mat(h, w, MatType.CV_32SC1);
            mat.SetArray(values);
            return mat;
        }
        finally { Exit(); }
    }

    /// <summary>Reads <paramref name="imagePath"/> (a regular PNG, JPEG, BMP, TIFF or WebP file whose declared size,
    /// decoded and predicted, fits <see cref="OnnxSegmenterOptions.MaxImageBytes"/>) and predicts it as
    /// <see cref="Predict(Mat)"/> does.</summary>
    /// <exception cref="FileNotFoundException">No such image.</exception>
    /// <exception cref="IOException">Not a regular file, or unreadable (names the image).</exception>
    /// <exception cref="InvalidDataException">Not an image Seg reads, corrupt, over the budget (names the image), or
    /// as <see cref="Predict(Mat)"/>.</exception>
    public Mat Predict(string imagePath)
    {
        using var image = ReadImage(imagePath);
        try { return Predict(image); }
        catch (ArgumentException e) { throw new ArgumentException($"{imagePath}: {e.Message}", nameof(imagePath), e); }
    }

    /// <summary>Reads an image file for this model: the checks of <see cref="Predict(string)"/>, with this model's
    /// per-pixel cost counted against <see cref="OnnxSegmenterOptions.MaxImageBytes"/>; 8-bit BGR.</summary>
    /// <exception cref="FileNotFoundException">No such image.</exception>
    /// <exception cref="IOException">Not a regular file, or unreadable (names the image).</exception>
    /// <exception cref="InvalidDataException">Not an image Seg reads, corrupt, or over the budget (names the image).</exception>
    public Mat ReadImage(string imagePath)
    {
        ArgumentException.ThrowIfNullOrEmpty(imagePath);
        ThrowIfDisposed();
        return Imaging.ImageFiles.Read(imagePath, ImreadModes.Color, PipelineBytesPerPixel, maxImageBytes, "OnnxSegmenterOptions.MaxImageBytes");
    }

    /// <summary>Class probabilities of each pixel at the image's size: softmax of the logits, averaged over the
    /// flip when <see cref="Inference"/> says so (as Seg's <c>eval</c> does).</summary>
    /// <param name="bgrImage">An 8-bit image: BGR (<c>CV_8UC3</c>, as <c>Cv2.ImRead</c> gives), grey or BGRA.</param>
    /// <exception cref="InvalidOperationException">The file outputs labels only (<see cref="OutputsLabels"/>), or ONNX
    /// Runtime failed running the model (names the file).</exception>
    /// <exception cref="ObjectDisposedException">After <see cref="Dispose"/>.</exception>
    /// <exception cref="ArgumentException">An image of another type, or too large for <see cref="OnnxSegmenterOptions.MaxImageBytes"/>.</exception>
    /// <exception cref="InvalidDataException">NaN or infinite logits (unless allowed), or an output of the wrong
    /// shape or class count (names the file).</exception>
    public ClassProbabilities PredictProbabilities(Mat bgrImage)
    {
        if (OutputsLabels)
            throw new InvalidOperationException($"{Path} outputs labels only (exported with --argmax): export without --argmax for probabilities.");
        Enter();
        try
        {
            var (chw, h, w) = Preprocess(bgrImage);
            var logits = Logits(chw, h, w);
            long nonFinite = NonFinitePixels(logits, h * w);
            var (classes, probabilities) = Softmax(logits, h * w);
            if (Inference.Flip)
            {
                var flippedLogits = FlipWidth(Logits(FlipWidth(chw, 3, h, w), h, w), h, w);
                nonFinite = Math.Max(nonFinite, NonFinitePixels(flippedLogits, h * w));
                var flipped = Softmax(flippedLogits, h * w).Values;
                for (int i = 0; i < probabilities.Length; i++) probabilities[i] = (probabilities[i] + flipped[i]) / 2;
            }
            if (nonFinite > 0)
            {
                if (!allowNonFinite)
                    throw new InvalidDataException($"{Path}: the model gave NaN or infinite logits at {nonFinite} of {(long)h * w} pixels of a {w}x{h} image; " +
                        "no class can be read there (OnnxSegmenterOptions.AllowNonFiniteLogits labels them -1 instead).");
                MarkNonFinite(probabilities, h * w);
            }
            return new ClassProbabilities(classes, h, w, probabilities, nonFinite);
        }
        finally { Exit(); }
    }

    // Pixels of [C, pixels] logits with any NaN or infinite value (softmax of an infinite logit is NaN or a
    // one-hot that hides the fault: neither is a prediction).
    static long NonFinitePixels(float[] logits, int pixels)
    {
        int classes = logits.Length / pixels;
        long count = 0;
        for (int i = 0; i < pixels; i++)
            for (int c = 0; c < classes; c++)
                if (!float.IsFinite(logits[c * pixels + i])) { count++; break; }
        return count;
    }

    // After softmax: a pixel with a NaN probability in any class gets NaN in all of them (ArgMax gives −1).
    static void MarkNonFinite(float[] probabilities, int pixels)
    {
        int classes = probabilities.Length / pixels;
        for (int i = 0; i < pixels; i++)
        {
            bool bad = false;
            for (int c = 0; c < classes && !bad; c++) bad = !float.IsFinite(probabilities[c * pixels + i]);
            if (bad)
                for (int c = 0; c < classes; c++) probabilities[c * pixels + i] = float.NaN;
        }
    }

    // Logits [C, h, w] of one preprocessed image: one run, or averaged overlapping windows.
    float[] Logits(float[] chw, int h, int w) => Inference.Slide ? Slide(chw, h, w) : Run(chw, h, w);

    float[] Run(float[] chw, int h, int w)
    {
        CheckStaticSize(h, w);
        using var input = OrtValue.CreateTensorValueFromMemory(chw, [1, 3, h, w]);
        using var results = RunSession(input, h, w);
        var shape = results[0].GetTensorTypeAndShape().Shape;
        if (shape is not [1, var c, var oh, var ow] || oh != h || ow != w || c < 1 || (NumClasses > 0 && c != NumClasses))
            throw new InvalidDataException($"{Path}: logits for a {h}x{w} image came out [{string.Join(",", shape)}], not [1,{(NumClasses > 0 ? NumClasses : "C")},{h},{w}].");
        return results[0].GetTensorDataAsSpan<float>().ToArray();
    }

    // One ONNX Runtime run; its errors name the model file and the input's size.
    IDisposableReadOnlyCollection<OrtValue> RunSession(OrtValue input, int h, int w)
    {
        try { return session.Run(runOptions, [inputName], [input], [outputName]); }
        catch (OnnxRuntimeException e)
        {
            throw new InvalidOperationException($"{Path}: ONNX Runtime failed running the model on a 1x3x{h}x{w} input: {e.Message}", e);
        }
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

    // RGB planes [3, h, w] of an 8-bit image, through the normalisation table, after the memory check.
    unsafe (float[] Chw, int Height, int Width) Preprocess(Mat image)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (image.Empty()) throw new ArgumentException("the image is empty", nameof(image));
        CheckBudget(image.Rows, image.Cols);
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

    void Enter()
    {
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            inFlight++;
        }
    }

    void Exit()
    {
        lock (gate)
            if (--inFlight == 0 && disposed) Monitor.PulseAll(gate);
    }

    void ThrowIfDisposed()
    {
        lock (gate) ObjectDisposedException.ThrowIf(disposed, this);
    }

    /// <summary>Releases the ONNX Runtime session, after the calls in flight on other threads have returned; calls
    /// that start afterwards throw <see cref="ObjectDisposedException"/>. Safe to call more than once.</summary>
    public void Dispose()
    {
        lock (gate)
        {
            if (disposed) return;
            disposed = true;
            while (inFlight > 0) Monitor.Wait(gate);
        }
        session.Dispose();
        sessionOptions.Dispose();
        runOptions.Dispose();
    }
}
