namespace Seg.Onnx;

/// <summary>Window placement of sliding-window inference, shared by Seg's <c>eval</c> and <see cref="OnnxSegmenter"/>.</summary>
public static class SlidingWindow
{
    /// <summary>Window origins along one axis: every <paramref name="stride"/>, the last one flush with the end
    /// (a single window at 0 when the axis is no longer than the window).</summary>
    public static IReadOnlyList<int> Starts(long length, int window, int stride)
    {
        if (length <= window) return [0];
        var starts = new List<int>();
        for (var s = 0; s + window < length; s += stride) starts.Add(s);
        starts.Add((int)(length - window));
        return starts;
    }
}
