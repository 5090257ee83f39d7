using Seg.Onnx;
using Seg.Train.Config;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Train.Evaluation;

/// <summary>
/// Test-time prediction: whole-image or sliding-window forward passes, optionally averaged over a horizontal flip
/// and several image scales (softmax probabilities are averaged, as in mmseg's test-time augmentation).
/// </summary>
public static class Inference
{
    /// <summary>Class probabilities [B, C, H, W] for images [B, 3, H, W], on the images' device.</summary>
    public static Tensor Probabilities(nn.Module<Tensor, Tensor> model, Tensor images, EvalConfig eval)
    {
        using var scope = NewDisposeScope();
        long h = images.shape[2], w = images.shape[3];
        Tensor? sum = null;
        foreach (var scale in eval.Scales)
        {
            var scaled = scale == 1.0 ? images
                : nn.functional.interpolate(images, size: [Math.Max(1, (long)Math.Round(h * scale)), Math.Max(1, (long)Math.Round(w * scale))],
                    mode: InterpolationMode.Bilinear, align_corners: false);
            var probs = Softmax(Logits(model, scaled, eval), h, w);
            if (eval.Flip)
                probs = probs + Softmax(Logits(model, scaled.flip(3), eval).flip(3), h, w);
            sum = sum is null ? probs : sum + probs;
        }
        var count = eval.Scales.Count * (eval.Flip ? 2 : 1);
        return (sum! / count).MoveToOuterDisposeScope();
    }

    static Tensor Softmax(Tensor logits, long h, long w)
    {
        if (logits.shape[2] != h || logits.shape[3] != w)
            logits = nn.functional.interpolate(logits, size: [h, w], mode: InterpolationMode.Bilinear, align_corners: false);
        return logits.softmax(1);
    }

    static Tensor Logits(nn.Module<Tensor, Tensor> model, Tensor images, EvalConfig eval) =>
        eval.Mode == "slide" ? Slide(model, images, eval.Window[0], eval.Window[1], eval.Stride[0], eval.Stride[1]) : Forward(model, images);

    // Under autocast the model returns bf16/fp16 logits: softmax, averaging and upsampling are done in float32.
    static Tensor Forward(nn.Module<Tensor, Tensor> model, Tensor images)
    {
        var logits = model.forward(images);
        return logits.dtype is ScalarType.BFloat16 or ScalarType.Float16 ? logits.to(ScalarType.Float32) : logits;
    }

    /// <summary>
    /// Sliding-window logits: windows of [wh, ww] every [sh, sw] pixels (the last window flush with the border),
    /// overlapping logits averaged. Images smaller than a window are padded with zeros, then cropped back.
    /// </summary>
    /// <exception cref="ArgumentException">A stride below 1 or beyond the window (pixels no window covers would
    /// get 0/0 logits).</exception>
    public static Tensor Slide(nn.Module<Tensor, Tensor> model, Tensor images, int wh, int ww, int sh, int sw)
    {
        if (wh < 1 || ww < 1 || sh < 1 || sw < 1 || sh > wh || sw > ww)
            throw new ArgumentException($"sliding window {wh}x{ww} with stride {sh}x{sw}: the stride must be between 1 and the window, " +
                                        "or some pixels are covered by no window");
        long h = images.shape[2], w = images.shape[3];
        long padH = Math.Max(0, wh - h), padW = Math.Max(0, ww - w);
        var padded = padH > 0 || padW > 0 ? nn.functional.pad(images, [0, padW, 0, padH]) : images;
        long ph = padded.shape[2], pw = padded.shape[3];
        Tensor? sum = null;
        var count = zeros([1, 1, ph, pw], device: images.device);
        foreach (var y in SlidingWindow.Starts(ph, wh, sh))
            foreach (var x in SlidingWindow.Starts(pw, ww, sw))
            {
                var crop = padded[.., .., y..(y + wh), x..(x + ww)];
                var logits = Forward(model, crop);
                sum ??= zeros([images.shape[0], logits.shape[1], ph, pw], logits.dtype, images.device);
                sum[.., .., y..(y + wh), x..(x + ww)] += logits;
                count[.., .., y..(y + wh), x..(x + ww)] += 1;
            }
        return (sum! / count)[.., .., ..(int)h, ..(int)w];
    }
}
