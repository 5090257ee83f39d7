using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Seg.Core.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses;

/// <summary>
/// CPU kernels for the Lovász weights of float32 errors, working in place on the tensors' memory (same inputs and
/// outputs as <see cref="LovaszWeights"/>), rows in parallel on libtorch's own threads (<see cref="TorchParallel"/>).
/// Exact: the valid pixels of a row are ordered by a stable LSD radix sort on order-preserving 32-bit keys (10-bit
/// digits, a pass skipped when all keys share its digit: three passes for errors in [0, 1]), then one walk down the order accumulates
/// the Jaccard increments in double: the same bits as <see cref="LovaszWeights.ExactGeneric"/> (which orders ties by
/// pixel index too and rounds each weight once from double), several times faster than ATen's comparison sort.
/// Histogram: one pass counts foreground and background pixels per (row, bin), one hands every pixel its bin's
/// weight. For the Lovász-Softmax the kernel is fused: it reads probabilities and labels directly and returns
/// signed weights (the loss's gradient w.r.t. the probabilities) and per-row offsets, so no error tensor is built.
/// No custom autograd function is needed: the weights are constants and the loss (Σ errors·weights, or
/// Σ signedWeights·p + offset) is differentiated by autograd.
/// </summary>
internal static unsafe class LovaszCpuKernel
{
    /// <summary>True when the kernels can handle these errors: float32 on the CPU, small enough to index
    /// (<see cref="FitsIndex"/>).</summary>
    public static bool Supports(Tensor errors) => errors.dtype == ScalarType.Float32 && FitsIndex(errors);

    /// <summary>True when the fused Lovász-Softmax kernel can handle these probabilities once in their work type
    /// (<see cref="LossInputs.WorkType"/>): as <see cref="Supports"/>, with class ids that fit its int16 labels.</summary>
    public static bool SupportsSoftmax(Tensor probas, long classCount) =>
        LossInputs.WorkType(probas) == ScalarType.Float32 && FitsIndex(probas) && classCount <= short.MaxValue;

    /// <summary>On the CPU with fewer than 2^30 elements: an element index and two flags share 32 bits of a sort item.</summary>
    static bool FitsIndex(Tensor t) => t.device_type == DeviceType.CPU && t.numel() < 1L << 30;

    /// <summary>Exact weights for [B,K,P] errors and foreground with [B,1,P] valid (see <see cref="LovaszWeights.Exact"/>).</summary>
    public static Tensor ExactWeights(Tensor errors, Tensor foreground, Tensor valid, bool perImage)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var view = new Inputs(errors, foreground, valid);
        var weights = zeros(errors.shape, ScalarType.Float32);
        var w = Pointer<float>(weights);
        long rows = perImage ? view.Batch * view.Classes : view.Classes;
        TorchParallel.For(rows, row => ExactRow(view, w, row, perImage));
        return weights.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The Lovász-Softmax terms of [B,K,P] float32 probabilities of the selected classes <paramref name="ids"/>
    /// with [B,P] labels (−1 = ignored), computing errors |[y = id] − p| on the fly: signed weights
    /// sign(p − fg)·w ([B,K,P], the gradient of the loss w.r.t. p), per-row offsets −Σ sign(p − fg)·w·fg
    /// ([B·K] per image, else [K]), so that a row's loss Σ |fg − p|·w is Σ signedWeights·p + offset, and that
    /// loss itself (<see cref="RowLoss"/>: the sum taken in double while the row is in cache).
    /// <paramref name="bins"/> 0 is exact (radix sort), &gt; 0 the histogram mode.
    /// </summary>
    public static (Tensor SignedWeights, Tensor Offsets, Tensor RowLosses) SoftmaxTerms(Tensor probas, Tensor labels, long[] ids, bool perImage, int bins)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var source = new SoftmaxSource(probas, labels, ids);
        // Both modes write every element (the exact mode zeroes ignored pixels as it reads them): no fill pass.
        var weights = empty(probas.shape, ScalarType.Float32);
        var w = Pointer<float>(weights);
        long rows = perImage ? source.Batch * source.Classes : source.Classes;
        var offsets = new double[rows];
        var rowLosses = new float[rows];
        TorchParallel.For(rows, row =>
        {
            offsets[row] = bins == 0
                ? ExactSoftmaxRow(source, w, row, perImage)
                : HistogramSoftmaxRow(source, w, row, perImage, bins);
            rowLosses[row] = (float)(RowDot(source, w, row, perImage) + offsets[row]);
        });
        var offsetTensor = tensor(offsets.Select(v => (float)v).ToArray(), [rows]);
        return (weights.MoveToOuterDisposeScope(), offsetTensor.MoveToOuterDisposeScope(), tensor(rowLosses, [rows]).MoveToOuterDisposeScope());
    }

    /// <summary>Σ p·signedWeight over a row's segments in double (float products are exact there), four lanes
    /// at a time: the row's loss less its offset. Run right after the row's weights were written, while they are
    /// still in cache, it replaces a [B,K,P] product tensor and its reduction.</summary>
    static double RowDot(SoftmaxSource source, float* signedWeights, long row, bool perImage)
    {
        var (firstImage, imageCount, k) = RowSegments(row, perImage, source.Batch, source.Classes);
        long pixels = source.Pixels;
        var low = Vector256<double>.Zero;
        var high = Vector256<double>.Zero;
        double tail = 0;
        for (long b = firstImage; b < firstImage + imageCount; b++)
        {
            long offset = (b * source.Classes + k) * pixels;
            float* p = source.Probas + offset, w = signedWeights + offset;
            long i = 0;
            for (; i + 8 <= pixels; i += 8)
            {
                Vector256<float> pi = Vector256.Load(p + i), wi = Vector256.Load(w + i);
                low += Vector256.WidenLower(pi) * Vector256.WidenLower(wi);
                high += Vector256.WidenUpper(pi) * Vector256.WidenUpper(wi);
            }
            for (; i < pixels; i++) tail += (double)p[i] * w[i];
        }
        return Vector256.Sum(low + high) + tail;
    }

    /// <summary>
    /// A kernel row loss as an autograd node: the forward value is the kernel's <c>RowLosses</c> (no [B,K,P]
    /// product is built), the backward hands the probabilities the gradient the expression
    /// Σ signedWeights·p + offset has, grad·signedWeights, computed as ATen's multiplication does (same bits).
    /// </summary>
    public static Tensor RowLoss(Tensor selected, Tensor signedWeights, Tensor rowLosses, bool perImage)
    {
        long batch = selected.shape[0], classes = selected.shape[1];
        var values = perImage ? rowLosses.view(batch, classes) : rowLosses;
        return selected.requires_grad && is_grad_enabled()
            ? RowLossFunction.apply(selected, signedWeights, values, perImage)
            : values.clone();
    }

    /// <summary>The autograd node of <see cref="RowLoss"/>: inputs (selected, signedWeights, values, perImage), only
    /// the first differentiable.</summary>
    sealed class RowLossFunction : autograd.SingleTensorFunction<RowLossFunction>
    {
        public override string Name => "LovaszRowLoss";

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var (signedWeights, values, perImage) = ((Tensor)vars[1], (Tensor)vars[2], (bool)vars[3]);
            ctx.save_for_backward([signedWeights]);
            ctx.save_data("perImage", perImage);
            return values.clone();
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
        {
            var signedWeights = ctx.get_saved_variables()[0];
            bool perImage = (bool)ctx.get_data("perImage");
            // The gradient of sum(p·w, dims) is the output gradient broadcast over the summed dims, times w.
            var grad = perImage ? gradOutput.unsqueeze(-1) : gradOutput.view(1, -1, 1);
            return [grad * signedWeights, null!, null!, null!];
        }
    }

    /// <summary>
    /// The label side of the fused kernel in one pass over [B,…] int64 labels on the CPU: [B,P] int16 labels with
    /// −1 for ignored pixels (the kernel's input) and the count of each class among the valid pixels of each image
    /// ([B,C] int64, for the choice of classes). It replaces about fifteen ATen ops on the label tensor (masks,
    /// label check, class counts) that cost the histogram loss a tenth of its step. A label outside
    /// [0, <paramref name="classCount"/>) that is not the ignore index throws, naming the first such label in
    /// the tensor's order, as <see cref="LabelChecks"/> does on the CPU.
    /// </summary>
    public static (Tensor Labels, Tensor ClassCounts) SoftmaxLabels(Tensor labels, long? ignoreIndex, long classCount, string what)
    {
        using var scope = NewDisposeScope();
        long batch = labels.shape[0], pixels = batch == 0 ? 0 : labels.numel() / batch;
        var dense = Dense(labels);
        var narrow = empty([batch, pixels], ScalarType.Int16);
        var counts = zeros([batch, classCount], ScalarType.Int64);
        long* source = Pointer<long>(dense), classCounts = Pointer<long>(counts);
        short* target = Pointer<short>(narrow);
        var firstBad = new long[batch];
        long ignore = ignoreIndex ?? long.MinValue;
        bool ignores = ignoreIndex.HasValue;
        TorchParallel.For(batch, b =>
        {
            long* y = source + b * pixels, count = classCounts + b * classCount;
            short* t = target + b * pixels;
            firstBad[b] = -1;
            for (long i = 0; i < pixels; i++)
            {
                long label = y[i];
                if (ignores && label == ignore) { t[i] = -1; continue; }
                if ((ulong)label >= (ulong)classCount)
                {
                    firstBad[b] = i;
                    return;
                }
                t[i] = (short)label;
                count[label]++;
            }
        });
        for (long b = 0; b < batch; b++)
            if (firstBad[b] >= 0)
                throw LabelChecks.OutOfRange(source[b * pixels + firstBad[b]], LossInputs.Shape(labels), classCount, what);
        return (narrow.MoveToOuterDisposeScope(), counts.MoveToOuterDisposeScope());
    }

    /// <summary>Raw views of the fused kernel's inputs: probabilities [B,K,P], labels [B,P] as int16 (−1 = ignored; class
    /// ids fit, see <see cref="SupportsSoftmax"/>), which keeps the label reads of the per-class passes small.</summary>
    readonly struct SoftmaxSource
    {
        public readonly float* Probas;
        public readonly short* Labels;
        public readonly long[] Ids;
        public readonly long Batch, Classes, Pixels;

        public SoftmaxSource(Tensor probas, Tensor labels, long[] ids)
        {
            Batch = probas.shape[0];
            Classes = probas.shape[1];
            Pixels = probas.shape[2];
            Ids = ids;
            // The dense copies live in the caller's dispose scope, so the pointers stay valid during the kernel.
            Probas = Pointer<float>(Dense(probas.detach()));
            Labels = Pointer<short>(Dense(labels.to(ScalarType.Int16)));
        }
    }

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

    /// <summary>Eight pixels of one class: int16 labels widened, probabilities, the foreground mask (−1 where the
    /// label is <paramref name="classId"/>, else 0) and the target (1 or 0).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void LoadEight(short* labels, float* probas, Vector256<int> classId, out Vector256<int> label,
                          out Vector256<float> p, out Vector256<int> foreground, out Vector256<float> target)
    {
        var packed = Vector128.Load(labels);
        label = Vector256.Create(Vector128.WidenLower(packed), Vector128.WidenUpper(packed));
        p = Vector256.Load(probas);
        foreground = Vector256.Equals(label, classId);
        target = foreground.AsSingle() & Vector256.Create(1f);
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

    /// <summary>Raw views of contiguous CPU inputs: errors and foreground [B,K,P], valid [B,P] (bool as bytes 0/1).</summary>
    readonly struct Inputs
    {
        public readonly float* Errors;
        public readonly byte* Foreground;
        public readonly byte* Valid;
        public readonly long Batch, Classes, Pixels;

        public Inputs(Tensor errors, Tensor foreground, Tensor valid)
        {
            Batch = errors.shape[0];
            Classes = errors.shape[1];
            Pixels = errors.shape[2];
            // The contiguous copies live in the caller's dispose scope, so the pointers stay valid during the kernel.
            Errors = Pointer<float>(Dense(errors.detach()));
            Foreground = Pointer<byte>(Dense(foreground));
            Valid = Pointer<byte>(Dense(valid.expand(Batch, 1, Pixels)));
        }
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

    /// <summary>The segments of a row: in per-image mode row b·K + k is class k of image b alone, else row k is class
    /// k in every image. Returns the first image, the number of images and the class.</summary>
    static (long FirstImage, long ImageCount, long Class) RowSegments(long row, bool perImage, long batch, long classes) =>
        perImage ? (row / classes, 1, row % classes) : (0, batch, row);

    /// <summary>A contiguous tensor whose data starts at its storage's start (what <see cref="Pointer{T}"/> reads).</summary>
    static Tensor Dense(Tensor t)
    {
        var c = t.contiguous();
        return c.storage_offset() == 0 ? c : c.clone();
    }

    /// <summary>The address of a dense CPU tensor's data (native memory: no pinning needed).</summary>
    static T* Pointer<T>(Tensor dense) where T : unmanaged =>
        (T*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(dense.bytes));

    /// <summary>A key whose unsigned ascending order is the float's descending order.</summary>
    static uint DescendingKey(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        uint ascending = (bits & 0x8000_0000u) != 0 ? ~bits : bits | 0x8000_0000u;
        return ~ascending;
    }

    /// <summary>Bin of an error in [0,1], numbered from the largest errors down (out-of-range values clamp).</summary>
    static int Bin(float error, int bins) => bins - 1 - Math.Clamp((int)(error * bins), 0, bins - 1);

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
