using System.Globalization;

namespace Seg.Core.Readers;

/// <summary>
/// Process-wide limits of Seg's file readers (weights, masks, IDX), which treat every file as hostile: a file may
/// make a reader allocate what the file really holds, and compressed data in it may expand only up to
/// <see cref="MaxDecompressedBytes"/>. Set it (or the <c>SEG_MAX_DECOMPRESSED_BYTES</c> environment variable)
/// before reading when larger compressed files are expected.
/// </summary>
public static class ReaderLimits
{
    /// <summary>Default of <see cref="MaxDecompressedBytes"/>: 1 GiB.</summary>
    public const long DefaultMaxDecompressedBytes = 1L << 30;

    /// <summary>The environment variable read once for <see cref="MaxDecompressedBytes"/>'s initial value.</summary>
    public const string MaxDecompressedBytesVariable = "SEG_MAX_DECOMPRESSED_BYTES";

    /// <summary>
    /// The most a deflate stream expands: a 258-byte match coded in 2 bits gives 1032 bytes per input byte
    /// (RFC 1951), so data that declares more than this times its compressed size cannot be honest.
    /// </summary>
    public const long DeflateMaxRatio = 1032;

    static long maxDecompressedBytes = Initial();

    /// <summary>
    /// The most bytes the compressed data of one file may expand to: the deflated entries of a <c>.pth</c> archive
    /// together, a PNG's image data, a gzipped IDX file. Files that need more are refused with a message naming this
    /// limit, before the memory is allocated where the file declares its size.
    /// </summary>
    public static long MaxDecompressedBytes
    {
        get => Volatile.Read(ref maxDecompressedBytes);
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(value);
            Volatile.Write(ref maxDecompressedBytes, value);
        }
    }

    /// <summary>The most <paramref name="compressedBytes"/> of deflate data can honestly expand to, capped by
    /// <see cref="MaxDecompressedBytes"/>.</summary>
    public static long InflateBound(long compressedBytes) =>
        Math.Min(MaxDecompressedBytes, compressedBytes > long.MaxValue / DeflateMaxRatio - 1 ? long.MaxValue : (compressedBytes + 1) * DeflateMaxRatio);

    /// <summary>A byte count for messages: exact, with a binary-unit gloss from 1 MiB up ("1073741824 bytes (1 GiB)").</summary>
    public static string DescribeBytes(long bytes) => bytes switch
    {
        >= 1L << 30 => $"{bytes} bytes ({(bytes / (double)(1L << 30)).ToString("0.#", CultureInfo.InvariantCulture)} GiB)",
        >= 1L << 20 => $"{bytes} bytes ({(bytes / (double)(1L << 20)).ToString("0.#", CultureInfo.InvariantCulture)} MiB)",
        _ => $"{bytes} bytes",
    };

    static long Initial() =>
        long.TryParse(Environment.GetEnvironmentVariable(MaxDecompressedBytesVariable), NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v > 0
            ? v : DefaultMaxDecompressedBytes;
}
