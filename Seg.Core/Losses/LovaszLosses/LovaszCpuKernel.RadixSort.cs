using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Seg.Core.Losses.LovaszLosses;

internal static unsafe partial class LovaszCpuKernel
{
    /// <summary>Exact row of the fused kernel; returns the row's offset. Reads each pixel once: ignored ones get
    /// their weight 0 here, valid ones become sort items that carry the sign of their gradient.</summary>
    static double ExactSoftmaxRow(SoftmaxSource source, float* signedWeights, long row, bool perImage)
    {
        var (firstImage, imageCount, k) = RowSegments(row, perImage, source.Batch, source.Classes);
        int id = (int)source.Ids[k];
        long pixels = source.Pixels;
        using var sorted = new SortedRow((int)(imageCount * pixels));
        for (long b = firstImage; b < firstImage + imageCount; b++)
        {
            long offset = (b * source.Classes + k) * pixels;
            short* labels = source.Labels + b * pixels;
            float* p = source.Probas + offset;
            float* w = signedWeights + offset;
            long i = 0;
            if (Vector256.IsHardwareAccelerated)
            {
                // Eight pixels at a time: the items of all eight, of which the valid ones are kept.
                var classId = Vector256.Create(id);
                var zeroErrorKey = Vector256.Create(SortedRow.ZeroErrorKey);
                var foregroundBit = Vector256.Create(SortedRow.ForegroundBit);
                var negativeBit = Vector256.Create(SortedRow.NegativeBit);
                var lanes = Vector256.Create(0u, 1, 2, 3, 4, 5, 6, 7);
                for (; i + 8 <= pixels; i += 8)
                {
                    LoadEight(labels + i, p + i, classId, out var label, out var pi, out var foreground, out var target);
                    var key = zeroErrorKey - Vector256.Abs(target - pi).AsUInt32();     // DescendingKey of |fg − p| ≥ 0
                    var low = (Vector256.Create((uint)(offset + i)) + lanes) | (foreground.AsUInt32() & foregroundBit)
                              | (Vector256.LessThan(pi, target).AsUInt32() & negativeBit);
                    uint ignored = Vector256.ExtractMostSignificantBits(label);        // label −1
                    sorted.AddEight(Vector256.WidenLower(low) | (Vector256.WidenLower(key) << 32),
                                    Vector256.WidenUpper(low) | (Vector256.WidenUpper(key) << 32),
                                    ~ignored & 0xFF, BitOperations.PopCount(Vector256.ExtractMostSignificantBits(foreground)));
                    for (; ignored != 0; ignored &= ignored - 1)
                    {
                        long at = i + BitOperations.TrailingZeroCount(ignored);
                        w[at] = IgnoredWeight(p[at]);
                    }
                }
            }
            for (; i < pixels; i++)
            {
                int label = labels[i];
                if (label < 0)
                {
                    w[i] = IgnoredWeight(p[i]);
                    continue;
                }
                bool fg = label == id;
                float target = fg ? 1f : 0f, pi = p[i];
                sorted.Add(MathF.Abs(target - pi), (uint)(offset + i), fg, pi < target);
            }
        }
        var sink = new SignedWeightSink(signedWeights);
        sorted.Walk(ref sink);
        return sink.Offset;
    }

    static void ExactRow(Inputs view, float* weights, long row, bool perImage)
    {
        var (firstImage, imageCount, k) = RowSegments(row, perImage, view.Batch, view.Classes);
        using var sorted = new SortedRow((int)(imageCount * view.Pixels));
        for (long b = firstImage; b < firstImage + imageCount; b++)
        {
            long offset = (b * view.Classes + k) * view.Pixels, validOffset = b * view.Pixels;
            for (long i = 0; i < view.Pixels; i++)
                if (view.Valid[validOffset + i] != 0)
                    sorted.Add(view.Errors[offset + i], (uint)(offset + i), view.Foreground[offset + i] != 0, false);
        }
        var sink = new WeightSink(weights);
        sorted.Walk(ref sink);
    }

    /// <summary>The signed weight of an ignored pixel: 0·sign(p), as the generic path has it (−0 for p &lt; 0, which
    /// only probabilities outside [0, 1] have).</summary>
    static float IgnoredWeight(float p) => p < 0 ? -0f : 0f;

    /// <summary>Writes sign(p − fg)·w (the gradient w.r.t. p; 0 where the error is 0, as the derivative of the
    /// reference's <c>abs</c> is there, and where p is NaN) and accumulates the row's offset −Σ sign·w·fg.</summary>
    struct SignedWeightSink(float* signedWeights) : IWeightSink
    {
        double offset;
        Vector256<double> offsetLanes;

        /// <summary>−Σ sign·w·fg over the elements taken.</summary>
        public readonly double Offset => offset + Vector256.Sum(offsetLanes);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Take(ulong item, double weight)
        {
            uint key = (uint)(item >> 32), packed = (uint)item;
            double signedWeight = key == SortedRow.ZeroErrorKey || key < SortedRow.InfiniteErrorKey ? 0
                                : (packed & SortedRow.NegativeBit) != 0 ? -weight : weight;
            signedWeights[packed & SortedRow.ElementMask] = (float)signedWeight;
            if ((packed & SortedRow.ForegroundBit) != 0) offset -= signedWeight;   // −signedWeight·target, target 1
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void TakeFour(Vector256<ulong> items, Vector256<double> weights)
        {
            var key = items.AsInt64() >>> 32;
            var zeroGradient = Vector256.Equals(key, Vector256.Create((long)SortedRow.ZeroErrorKey))
                               | Vector256.LessThan(key, Vector256.Create((long)SortedRow.InfiniteErrorKey));
            // The negative flag (bit 30) moved to bit 63 flips the weight's sign; zero-gradient lanes become +0.
            var flip = (items << 33) & Vector256.Create(0x8000_0000_0000_0000ul);
            var signed = Vector256.AndNot(weights.AsUInt64() ^ flip, zeroGradient.AsUInt64()).AsDouble();
            var foreground = Vector256.LessThan((items << 32).AsInt64(), Vector256<long>.Zero).AsDouble();
            offsetLanes -= signed & foreground;
            Store(signedWeights, items, signed);
        }
    }

    /// <summary>Writes the weight itself.</summary>
    readonly struct WeightSink(float* target) : IWeightSink
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Take(ulong item, double weight) => target[(uint)item & SortedRow.ElementMask] = (float)weight;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void TakeFour(Vector256<ulong> items, Vector256<double> weights) => Store(target, items, weights);
    }

    /// <summary>Stores four double weights as floats at the elements of their items.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Store(float* target, Vector256<ulong> items, Vector256<double> weights)
    {
        var single = Avx.ConvertToVector128Single(weights);
        target[(uint)items.GetElement(0) & SortedRow.ElementMask] = single.GetElement(0);
        target[(uint)items.GetElement(1) & SortedRow.ElementMask] = single.GetElement(1);
        target[(uint)items.GetElement(2) & SortedRow.ElementMask] = single.GetElement(2);
        target[(uint)items.GetElement(3) & SortedRow.ElementMask] = single.GetElement(3);
    }

    /// <summary>Receives each element's Lovász weight, in descending order of error, with the sort item it was
    /// added as (element, flags, and the key: a key of error 0 or NaN means a zero gradient); one at a time, or
    /// four in a row.</summary>
    interface IWeightSink
    {
        void Take(ulong item, double weight);
        void TakeFour(Vector256<ulong> items, Vector256<double> weights);
    }

    /// <summary>
    /// The valid elements of one exact row as 64-bit items: the order-preserving key of the error in the high half;
    /// in the low half the element index (below 2^30, see <see cref="Supports"/>), a foreground flag and the sign
    /// of the gradient, so that the walk needs nothing but the item (no second random read per element). One array
    /// of items moves through the radix passes instead of a key array and an index array, which halves the
    /// scattered write streams. <see cref="Walk"/> sorts and hands out the Jaccard increments in order.
    /// </summary>
    sealed class SortedRow(int capacity) : IDisposable
    {
        public const uint ForegroundBit = 0x8000_0000u, NegativeBit = 0x4000_0000u, ElementMask = 0x3FFF_FFFFu;
        /// <summary>Keys of errors 0 and +∞; keys below the latter are NaN errors. Both get a zero gradient.</summary>
        public const uint ZeroErrorKey = 0x7FFF_FFFFu, InfiniteErrorKey = 0x007F_FFFFu;
        ulong[] items = ArrayPool<ulong>.Shared.Rent(capacity), spare = ArrayPool<ulong>.Shared.Rent(capacity);
        int count;
        long foregroundTotal;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Add(float error, uint element, bool foreground, bool negative)
        {
            items[count++] = ((ulong)DescendingKey(error) << 32) | element
                             | (foreground ? ForegroundBit : 0) | (negative ? NegativeBit : 0);
            if (foreground) foregroundTotal++;
        }

        /// <summary>Adds eight items of which those whose bit is set in <paramref name="valid"/> are kept, in order;
        /// <paramref name="foregrounds"/> of the kept ones are foreground.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void AddEight(Vector256<ulong> first, Vector256<ulong> second, uint valid, int foregrounds)
        {
            // All eight are stored (there is room: count only trails the pixels read), then compacted in place.
            ref ulong at = ref items[count];
            first.StoreUnsafe(ref at);
            second.StoreUnsafe(ref at, 4);
            foregroundTotal += foregrounds;
            if (valid == 0xFF)
            {
                count += 8;
                return;
            }
            // Every lane is copied down and the end advances by its valid bit: no branch on the lanes, whose
            // pattern is random (a third of eight-pixel blocks hold an ignored pixel at 5 % ignored).
            fixed (ulong* block = &at)
            {
                int kept = 0;
                for (int lane = 0; lane < 8; lane++)
                {
                    block[kept] = block[lane];
                    kept += (int)(valid >> lane & 1);
                }
                count += kept;
            }
        }

        /// <summary>Sorts by descending error and gives every element its increment of the Jaccard loss of the
        /// sorted prefix, J = 1 − (F − f)/(F + b) for f foreground and b background elements so far, in double.
        /// Four elements a round without a branch: their running counts from a prefix table of their foreground
        /// flags, four divisions in one instruction (the scalar loop's branches and flag tests, not its
        /// divisions or stores, had bounded it). Same operations per element, so the same bits.</summary>
        public void Walk<TSink>(ref TSink result) where TSink : struct, IWeightSink
        {
            RadixSort(ref items, ref spare, count);
            var sink = result;   // a local copy: its accumulators stay in registers, not in memory behind a ref
            double previous = 0, total = foregroundTotal;
            long cumForeground = 0;
            int n = count, j = 0;
            fixed (ulong* sorted = items)
            fixed (double* prefix = ForegroundPrefix)
            {
                if (Avx2.IsSupported)
                {
                    var totals = Vector256.Create(total);
                    var lanePositions = Vector256.Create(1.0, 2, 3, 4);
                    for (; j + 4 <= n; j += 4)
                    {
                        var block = Vector256.Load(sorted + j);
                        uint foreground = Vector256.ExtractMostSignificantBits(block << 32);   // bit 31 of each item
                        var cumFg = Vector256.Create((double)cumForeground) + Vector256.Load(prefix + 4 * foreground);
                        var cumBg = Vector256.Create((double)j) + lanePositions - cumFg;
                        var jaccard = Vector256<double>.One - (totals - cumFg) / (totals + cumBg);
                        var before = Avx.Blend(Avx2.Permute4x64(jaccard, 0b10_01_00_11), Vector256.Create(previous), 0b0001);
                        sink.TakeFour(block, jaccard - before);
                        cumForeground += BitOperations.PopCount(foreground);
                        previous = jaccard.GetElement(3);
                    }
                }
                for (; j < n; j++)
                {
                    ulong item = sorted[j];
                    cumForeground += (long)((item >> 31) & 1);
                    double jaccard = 1 - (total - cumForeground) / (total + (j + 1 - cumForeground));
                    sink.Take(item, jaccard - previous);
                    previous = jaccard;
                }
            }
            result = sink;
        }

        /// <summary>For each 4-bit foreground mask, the running count of foreground elements at each of the four
        /// lanes (lane k counts bits 0..k).</summary>
        static readonly double[] ForegroundPrefix = Enumerable.Range(0, 64)
            .Select(i => (double)BitOperations.PopCount((uint)(i / 4) & ((2u << (i % 4)) - 1))).ToArray();

        public void Dispose()
        {
            ArrayPool<ulong>.Shared.Return(items);
            ArrayPool<ulong>.Shared.Return(spare);
        }
    }

    /// <summary>A key whose unsigned ascending order is the float's descending order.</summary>
    static uint DescendingKey(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        uint ascending = (bits & 0x8000_0000u) != 0 ? ~bits : bits | 0x8000_0000u;
        return ~ascending;
    }

    /// <summary>Stable LSD radix sort of the first n items by their high 32 bits (the key), 10 bits a pass, a
    /// pass skipped when all keys share its digit. Ten-bit digits rather than eleven: a pass's 1024 open
    /// destinations (64 KiB of cache lines) fit the first-level cache better than 2048 do, 3–5 % faster on
    /// VM-A. Errors in [0, 1] (every Lovász-Softmax error) have keys whose top two bits agree, so their fourth
    /// pass is skipped; other errors (hinge errors of either sign, infinities, NaN) take it. On raw pointers:
    /// each pass is a handful of instructions per item, and the index checks of arrays and spans made it about
    /// a fifth slower.</summary>
    static void RadixSort(ref ulong[] items, ref ulong[] spare, int n)
    {
        const int Radix = 1 << DigitBits, Passes = 4;
        const ulong Mask = Radix - 1;
        // Counted in two halves with their own tables: many neighbouring keys share the top digit (the exponent),
        // and one table would chain their increments through memory. The top two bits are not counted unless
        // the keys differ there (a rare fourth pass).
        int* counts = stackalloc int[2 * Passes * Radix];
        new Span<int>(counts, 2 * Passes * Radix).Clear();
        uint anyBits = 0, allBits = ~0u;
        fixed (ulong* itemsStart = items)
        {
            int half = n / 2;
            ulong* first = itemsStart, second = itemsStart + half;
            int* other = counts + Passes * Radix;
            for (int i = 0; i < half; i++)
            {
                uint key = (uint)(first[i] >> 32), key2 = (uint)(second[i] >> 32);
                counts[key & Mask]++;
                counts[Radix + ((key >> 10) & Mask)]++;
                counts[2 * Radix + ((key >> 20) & Mask)]++;
                other[key2 & Mask]++;
                other[Radix + ((key2 >> 10) & Mask)]++;
                other[2 * Radix + ((key2 >> 20) & Mask)]++;
                anyBits |= key | key2;
                allBits &= key & key2;
            }
            for (int i = 2 * half; i < n; i++)
            {
                uint key = (uint)(itemsStart[i] >> 32);
                counts[key & Mask]++;
                counts[Radix + ((key >> 10) & Mask)]++;
                counts[2 * Radix + ((key >> 20) & Mask)]++;
                anyBits |= key;
                allBits &= key;
            }
            if (((anyBits ^ allBits) >> 30) != 0)
                for (int i = 0; i < n; i++) counts[3 * Radix + (itemsStart[i] >> 62)]++;
            else if (n > 0)
                counts[3 * Radix + (itemsStart[0] >> 62)] = n;
        }
        for (int d = 0; d < 3 * Radix; d++) counts[d] += counts[Passes * Radix + d];
        for (int pass = 0; pass < Passes; pass++)
        {
            int* count = counts + pass * Radix;
            int shift = 32 + pass * DigitBits;
            if (n == 0 || count[(items[0] >> shift) & Mask] == n) continue; // every key shares this digit
            int sum = 0;
            for (int d = 0; d < Radix; d++) { int c = count[d]; count[d] = sum; sum += c; }
            fixed (ulong* from = items, to = spare)
            {
                // Four items per round: fewer loop instructions; stores stay in item order (stable).
                ulong* item = from, end = from + n;
                for (; item + 4 <= end; item += 4)
                {
                    ulong a = item[0], b = item[1], c = item[2], d = item[3];
                    to[count[(a >> shift) & Mask]++] = a;
                    to[count[(b >> shift) & Mask]++] = b;
                    to[count[(c >> shift) & Mask]++] = c;
                    to[count[(d >> shift) & Mask]++] = d;
                }
                for (; item < end; item++) to[count[(*item >> shift) & Mask]++] = *item;
            }
            (items, spare) = (spare, items);
        }
    }

    /// <summary>Bits of a radix digit.</summary>
    const int DigitBits = 10;
}
