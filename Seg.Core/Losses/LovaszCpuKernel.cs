using System.Buffers;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses;

/// <summary>
/// CPU kernel for the exact Lovász weights of float32 rows: per row (rows in parallel, as many workers as
/// TorchSharp's thread count), the valid pixels are ordered by a stable LSD radix sort on order-preserving 32-bit
/// keys (three passes of 11/11/10 bits, a pass skipped when all keys share its digit), then one walk down the order
/// accumulates the Jaccard increments in double. It computes the same weights as the device-generic
/// <see cref="LovaszWeights.ExactGeneric"/> (up to float rounding, and up to the order of tied errors, which does
/// not change the loss) several times faster than ATen's comparison sort. No custom autograd function is needed:
/// the weights are constants and the loss Σ errors·weights is differentiated by autograd through the errors.
/// </summary>
internal static class LovaszCpuKernel
{
    const byte ValidFlag = 1, ForegroundFlag = 2;

    /// <summary>True when the kernel can handle these rows: float32 on the CPU, rows shorter than 2^31.</summary>
    public static bool Supports(Tensor errors) =>
        errors.device_type == DeviceType.CPU && errors.dtype == ScalarType.Float32 && errors.shape[1] < int.MaxValue;

    /// <summary>Weights for [K,P] float32 errors with [K,P] bool foreground and valid masks.</summary>
    public static Tensor ExactWeights(Tensor errors, Tensor foreground, Tensor valid)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        long rows = errors.shape[0];
        int length = (int)errors.shape[1];
        var e = errors.detach().contiguous().data<float>().ToArray();
        var flags = (valid.to(ScalarType.Byte) + foreground.to(ScalarType.Byte) * ForegroundFlag).contiguous().data<byte>().ToArray();
        var weights = new float[e.Length];
        var options = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, torch.get_num_threads()) };
        Parallel.For(0L, rows, options, row => RowWeights(e, flags, weights, row * length, length));
        return tensor(weights, [rows, length]).MoveToOuterDisposeScope();
    }

    static void RowWeights(float[] errors, byte[] flags, float[] weights, long offset, int length)
    {
        var keys = ArrayPool<uint>.Shared.Rent(length);
        var spareKeys = ArrayPool<uint>.Shared.Rent(length);
        var order = ArrayPool<int>.Shared.Rent(length);
        var spareOrder = ArrayPool<int>.Shared.Rent(length);
        try
        {
            int n = 0;
            long foregroundTotal = 0;
            for (int i = 0; i < length; i++)
            {
                byte f = flags[offset + i];
                if ((f & ValidFlag) == 0) continue;
                keys[n] = DescendingKey(errors[offset + i]);
                order[n++] = i;
                if ((f & ForegroundFlag) != 0) foregroundTotal++;
            }
            RadixSort(ref keys, ref order, ref spareKeys, ref spareOrder, n);
            double cumForeground = 0, cumBackground = 0, previous = 0;
            for (int j = 0; j < n; j++)
            {
                int i = order[j];
                if ((flags[offset + i] & ForegroundFlag) != 0) cumForeground++; else cumBackground++;
                double jaccard = 1 - (foregroundTotal - cumForeground) / (foregroundTotal + cumBackground);
                weights[offset + i] = (float)(jaccard - previous);
                previous = jaccard;
            }
        }
        finally
        {
            ArrayPool<uint>.Shared.Return(keys);
            ArrayPool<uint>.Shared.Return(spareKeys);
            ArrayPool<int>.Shared.Return(order);
            ArrayPool<int>.Shared.Return(spareOrder);
        }
    }

    /// <summary>A key whose unsigned ascending order is the float's descending order (−0 and +0 tie-break, harmlessly).</summary>
    static uint DescendingKey(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        uint ascending = (bits & 0x8000_0000u) != 0 ? ~bits : bits | 0x8000_0000u;
        return ~ascending;
    }

    /// <summary>Stable LSD radix sort of the first n keys, carrying their pixel indices.</summary>
    static void RadixSort(ref uint[] keys, ref int[] order, ref uint[] spareKeys, ref int[] spareOrder, int n)
    {
        Span<int> shifts = [0, 11, 22];
        Span<int> counts = stackalloc int[3 * 2048];
        counts.Clear();
        for (int i = 0; i < n; i++)
        {
            uint k = keys[i];
            counts[(int)(k & 0x7FF)]++;
            counts[2048 + (int)((k >> 11) & 0x7FF)]++;
            counts[4096 + (int)(k >> 22)]++;
        }
        for (int pass = 0; pass < 3; pass++)
        {
            var count = counts.Slice(pass * 2048, 2048);
            int shift = shifts[pass];
            if (n == 0 || count[(int)((keys[0] >> shift) & 0x7FF)] == n) continue; // every key shares this digit
            int sum = 0;
            for (int d = 0; d < 2048; d++) { int c = count[d]; count[d] = sum; sum += c; }
            for (int i = 0; i < n; i++)
            {
                uint k = keys[i];
                int slot = count[(int)((k >> shift) & 0x7FF)]++;
                spareKeys[slot] = k;
                spareOrder[slot] = order[i];
            }
            (keys, spareKeys) = (spareKeys, keys);
            (order, spareOrder) = (spareOrder, order);
        }
    }
}
