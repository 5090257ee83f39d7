using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Seg.Core.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses.LovaszLosses;

/// <summary>
/// CPU kernels for the Lovász weights of float32 errors, working in place on the tensors' memory (same inputs and
/// outputs as <see cref="LovaszWeights"/>), rows in parallel on libtorch's own threads (<see cref="TorchParallel"/>).
/// This file holds the entry points and the raw views of their inputs; the parts live beside it:
/// <list type="bullet">
/// <item>Exact (<c>LovaszCpuKernel.RadixSort.cs</c>): the valid pixels of a row are ordered by a stable LSD radix
/// sort on order-preserving 32-bit keys (10-bit digits, a pass skipped when all keys share its digit: three passes
/// for errors in [0, 1]), then one walk down the order accumulates the Jaccard increments in double and hands each
/// weight to a sink: the same bits as <see cref="LovaszWeights.ExactGeneric"/> (which orders ties by pixel index
/// too and rounds each weight once from double), several times faster than ATen's comparison sort.</item>
/// <item>Histogram (<c>LovaszCpuKernel.Histogram.cs</c>): one pass counts foreground and background pixels per
/// (row, bin), one hands every pixel its bin's weight.</item>
/// <item>The row loss (<c>LovaszCpuKernel.RowLoss.cs</c>): a custom autograd node.</item>
/// </list>
/// For the Lovász-Softmax the kernel is fused: it reads probabilities and labels directly and returns signed
/// weights (the loss's gradient w.r.t. the probabilities), per-row offsets and the row losses themselves, so no
/// error tensor is built. The weights are constants of the backward pass. <see cref="ExactWeights"/>' weights are
/// differentiated by autograd through Σ errors·weights; the fused row losses enter the graph through the custom
/// autograd node <see cref="RowLoss"/>, whose backward is grad·signedWeights, so that the forward builds no
/// [B,K,P] product.
/// </summary>
internal static unsafe partial class LovaszCpuKernel
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
}
