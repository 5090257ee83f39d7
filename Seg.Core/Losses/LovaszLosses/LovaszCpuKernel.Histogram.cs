using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Seg.Core.Losses.LovaszLosses;

internal static unsafe partial class LovaszCpuKernel
{
    /// <summary>
    /// Histogram row of the fused kernel: count foreground and background pixels per bin of the row's segments
    /// (one per image, or the row's class in every image) into a row-local table that stays in cache, while noting
    /// each pixel's slot and gradient sign in a 4-byte code; turn the counts into per-pixel weights; then hand
    /// every pixel its slot's weight, signed, from its code alone. Both passes compute eight pixels at a time
    /// (only the count increments are scalar). Ignored pixels go to an extra bin of weight 0, so nothing branches
    /// on them. Returns the row's offset.
    /// </summary>
    static double HistogramSoftmaxRow(SoftmaxSource source, float* signedWeights, long row, bool perImage, int bins)
    {
        var (firstImage, imageCount, k) = RowSegments(row, perImage, source.Batch, source.Classes);
        int id = (int)source.Ids[k];
        int pixels = (int)source.Pixels;
        var counts = ArrayPool<int>.Shared.Rent((bins + 1) * 2);   // [slot = bin·2 + isForeground], bin 0 = largest errors
        var perPixel = ArrayPool<float>.Shared.Rent(bins + 1);
        var codes = ArrayPool<uint>.Shared.Rent((int)(imageCount * pixels));
        try
        {
            Array.Clear(counts, 0, (bins + 1) * 2);
            fixed (uint* codeBase = codes)
            fixed (int* count = counts)
                for (long b = firstImage; b < firstImage + imageCount; b++)
                {
                    var segment = new HistogramSegment(source.Labels + b * pixels, source.Probas + (b * source.Classes + k) * pixels,
                                                       codeBase + (b - firstImage) * pixels, pixels);
                    segment.Encode(id, bins);
                    for (int i = 0; i < pixels; i++)
                        count[segment.Codes[i] & SlotMask]++;
                }

            long foregroundTotal = 0;
            for (int bin = 0; bin < bins; bin++) foregroundTotal += counts[bin * 2 + 1];
            double cumForeground = 0, cumBackground = 0, previous = 0;
            for (int bin = 0; bin < bins; bin++)
            {
                int background = counts[bin * 2], fg = counts[bin * 2 + 1];
                perPixel[bin] = 0;
                if (background + fg == 0) continue;
                cumForeground += fg;
                cumBackground += background;
                double jaccard = 1 - (foregroundTotal - cumForeground) / (foregroundTotal + cumBackground);
                perPixel[bin] = (float)((jaccard - previous) / (background + fg));
                previous = jaccard;
            }
            perPixel[bins] = 0;

            double offset = 0;
            fixed (uint* codeBase = codes)
            fixed (float* table = perPixel)
                for (long b = firstImage; b < firstImage + imageCount; b++)
                    offset += HistogramSegment.Decode(codeBase + (b - firstImage) * pixels, table,
                                                      signedWeights + (b * source.Classes + k) * pixels, pixels);
            return offset;
        }
        finally
        {
            ArrayPool<int>.Shared.Return(counts);
            ArrayPool<float>.Shared.Return(perPixel);
            ArrayPool<uint>.Shared.Return(codes);
        }
    }

    /// <summary>Sign bit of a histogram code: the pixel's error decreases as its probability grows (d|fg − p|/dp = −1).</summary>
    const uint NegativeCode = 0x8000_0000u;

    /// <summary>Bit of a histogram code for an error of exactly 0 (p = fg), whose gradient is 0: the reference's
    /// <c>abs</c> has derivative 0 there. The pixel still counts in its bin.</summary>
    const uint ZeroCode = 0x4000_0000u;

    /// <summary>The histogram slot of a code.</summary>
    const uint SlotMask = ~(NegativeCode | ZeroCode);

    /// <summary>One image's pixels of one class in the histogram kernel: int16 labels (−1 = ignored), float32
    /// probabilities, and a code per pixel (histogram slot bin·2 + isForeground, with <see cref="NegativeCode"/> and
    /// <see cref="ZeroCode"/>).</summary>
    readonly struct HistogramSegment(short* labels, float* probas, uint* codes, int pixels)
    {
        public readonly uint* Codes = codes;

        /// <summary>Writes every pixel's code for class <paramref name="id"/>.</summary>
        public void Encode(int id, int bins)
        {
            int i = 0;
            if (Vector256.IsHardwareAccelerated)
            {
                var classId = Vector256.Create(id);
                var binCount = Vector256.Create((float)bins);
                var lastBin = Vector256.Create(bins - 1);
                var ignoredBin = Vector256.Create(bins);
                var sign = Vector256.Create(NegativeCode);
                var zeroBit = Vector256.Create(ZeroCode);
                for (; i + 8 <= pixels; i += 8)
                {
                    LoadEight(labels + i, probas + i, classId, out var label, out var p, out var foreground, out var target);
                    var error = Vector256.Abs(target - p);
                    var fromTop = Vector256.Min(Vector256.Max(Vector256.ConvertToInt32(error * binCount), Vector256<int>.Zero), lastBin);
                    var bin = Vector256.ConditionalSelect(Vector256.LessThan(label, Vector256<int>.Zero), ignoredBin, lastBin - fromTop);
                    var slot = (bin << 1) - foreground;
                    var negative = Vector256.LessThan(p, target).AsUInt32() & sign;
                    var zero = Vector256.Equals(p, target).AsUInt32() & zeroBit;
                    (slot.AsUInt32() | negative | zero).Store(Codes + i);
                }
            }
            for (; i < pixels; i++)
            {
                int label = labels[i];
                bool foreground = label == id;
                float target = foreground ? 1f : 0f;
                int bin = label < 0 ? bins : Bin(MathF.Abs(target - probas[i]), bins);
                Codes[i] = (uint)(bin * 2 + (foreground ? 1 : 0)) | (probas[i] < target ? NegativeCode : 0)
                           | (probas[i] == target ? ZeroCode : 0);
            }
        }

        /// <summary>Signed weight per pixel from its code and the per-slot weight table; returns the segment's
        /// offset −Σ over foreground pixels of their signed weights.</summary>
        public static double Decode(uint* codes, float* table, float* signedWeights, int pixels)
        {
            int i = 0;
            float offset = 0;
            if (Avx2.IsSupported)
            {
                var sum = Vector256<float>.Zero;
                var sign = Vector256.Create(NegativeCode);
                var zeroBit = Vector256.Create(ZeroCode);
                var slotMask = Vector256.Create(SlotMask);
                var foregroundBit = Vector256.Create(1u);
                for (; i + 8 <= pixels; i += 8)
                {
                    var code = Vector256.Load(codes + i);
                    var weight = Avx2.GatherVector256(table, ((code & slotMask) >> 1).AsInt32(), 4);
                    var zero = Vector256.Equals(code & zeroBit, zeroBit);
                    var signed = Vector256.AndNot(weight.AsUInt32() ^ (code & sign), zero).AsSingle();   // flipping the sign bit negates
                    signed.Store(signedWeights + i);
                    sum += signed & Vector256.Equals(code & foregroundBit, foregroundBit).AsSingle();
                }
                offset = -Vector256.Sum(sum);
            }
            for (; i < pixels; i++)
            {
                uint code = codes[i];
                float weight = (code & ZeroCode) != 0 ? 0 : table[(code & SlotMask) >> 1];
                float signed = (code & NegativeCode) != 0 ? -weight : weight;
                signedWeights[i] = signed;
                if ((code & 1) != 0) offset -= signed;
            }
            return offset;
        }
    }

    /// <summary>Bin of an error in [0,1], numbered from the largest errors down (out-of-range values clamp).</summary>
    static int Bin(float error, int bins) => bins - 1 - Math.Clamp((int)(error * bins), 0, bins - 1);
}
