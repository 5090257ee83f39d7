using System.Buffers.Binary;

namespace Seg.Tests.Fuzz;

/// <summary>How many cases of each kind the mutator makes per seed.</summary>
/// <param name="TruncationStride">Truncate at every offset below 4 KB that is a multiple of this (1: every offset).</param>
/// <param name="Flips">Cases with 1–4 random bytes xor-ed with a random non-zero value.</param>
/// <param name="Splices">Cases with a random range (1–16 bytes) duplicated in place, or deleted.</param>
/// <param name="LengthEdits">How many (length field, boundary value) edits per seed, drawn from all of them; −1: all.</param>
/// <param name="Structured">Format-aware mutations per format (<see cref="IFuzzFormat.Structured"/>).</param>
public sealed record MutationPlan(int TruncationStride, int Flips, int Splices, int LengthEdits, int Structured)
{
    /// <summary>The default test run's subset: a few dozen cases per seed.</summary>
    public static readonly MutationPlan Short = new(TruncationStride: 509, Flips: 4, Splices: 2, LengthEdits: 8, Structured: 6);

    /// <summary>The opt-in long run: every truncation below 4 KB and many random mutations.</summary>
    public static MutationPlan Long(int flips) =>
        new(TruncationStride: 1, Flips: flips, Splices: flips / 4, LengthEdits: -1, Structured: flips);
}

/// <summary>
/// Deterministic mutations of a format's seeds: the same master seed gives the same cases, in the same order, with the
/// same ids, so that any failing case can be re-run by its id.
/// </summary>
public static class Mutator
{
    /// <summary>Truncations are made at every offset below this (and, past it, at a few random offsets).</summary>
    public const int TruncationWindow = 4096;

    /// <summary>Values written into length fields: zero, small, the sign and width boundaries, and huge.</summary>
    static readonly ulong[] Boundaries =
    [
        0, 1, 2, 7, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000,
        0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 0x1_0000_0000, 0x100_0000_0000,
        0x4000_0000_0000_0000, 0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, 0xFFFF_FFFF_FFFF_FFF0, ulong.MaxValue,
    ];

    /// <summary>All cases of <paramref name="format"/> under <paramref name="plan"/>: per seed the seed itself
    /// (kind <c>seed</c>), truncations, length-field edits, byte flips, splices; then the format's structured
    /// mutations and its crafted cases.</summary>
    public static IEnumerable<FuzzCase> Cases(IFuzzFormat format, MutationPlan plan, int masterSeed)
    {
        foreach (var seed in format.Seeds())
        {
            string prefix = $"{format.Name}/{seed.Name}";
            // A per-seed generator (HashCode is randomised per process, so not that), so that adding a seed or a kind
            // elsewhere does not shift these cases.
            var rng = new Random(unchecked(masterSeed * 31 + StableHash(prefix)));
            var bytes = seed.Bytes;
            yield return new FuzzCase($"{prefix}/{(seed.Readable ? "seed" : "unreadable-seed")}", bytes);

            int window = Math.Min(bytes.Length, TruncationWindow);
            for (int n = 0; n < window; n += plan.TruncationStride)
                yield return new FuzzCase($"{prefix}/truncate/{n}", bytes[..n]);
            if (bytes.Length > TruncationWindow)
                for (int k = 0; k < Math.Max(4, 64 / plan.TruncationStride); k++)
                {
                    int n = rng.Next(TruncationWindow, bytes.Length);
                    yield return new FuzzCase($"{prefix}/truncate/{n}", bytes[..n]);
                }

            var edits = seed.LengthFields.SelectMany(field => FieldValues(field, bytes.Length).Select(v => (field, v.Value, v.Label))).ToList();
            if (plan.LengthEdits >= 0 && plan.LengthEdits < edits.Count)
                edits = edits.OrderBy(_ => rng.Next()).Take(plan.LengthEdits).ToList();
            foreach (var (field, value, label) in edits)
            {
                var edited = WriteField(bytes, field, value);
                if (edited is not null) yield return new FuzzCase($"{prefix}/length/{field.What}@{field.Offset}={label}", edited);
            }

            for (int k = 0; k < plan.Flips; k++)
            {
                var flipped = (byte[])bytes.Clone();
                int count = 1 + rng.Next(4);
                for (int j = 0; j < count && flipped.Length > 0; j++)
                {
                    int at = rng.Next(flipped.Length);
                    // Half the flips hit the first 512 bytes, where the headers and length fields are.
                    if (j == 0 && rng.Next(2) == 0) at = rng.Next(Math.Min(512, flipped.Length));
                    flipped[at] ^= (byte)(1 + rng.Next(255));
                }
                yield return new FuzzCase($"{prefix}/flip/{k}", flipped);
            }

            for (int k = 0; k < plan.Splices && bytes.Length > 1; k++)
            {
                int at = rng.Next(bytes.Length - 1), len = Math.Min(1 + rng.Next(16), bytes.Length - at);
                byte[] spliced = rng.Next(2) == 0
                    ? [.. bytes.AsSpan(0, at + len), .. bytes.AsSpan(at, len), .. bytes.AsSpan(at + len)]   // duplicate
                    : [.. bytes.AsSpan(0, at), .. bytes.AsSpan(at + len)];                                  // delete
                yield return new FuzzCase($"{prefix}/splice/{k}", spliced);
            }
        }
        var structuredRng = new Random(unchecked(masterSeed * 31 + StableHash(format.Name + "/structured")));
        int s = 0;
        foreach (var c in format.Structured(structuredRng, plan.Structured))
            yield return c with { Id = $"{format.Name}/structured/{s++}/{c.Id}" };
        foreach (var crafted in format.Crafted())
            yield return crafted with { Id = $"{format.Name}/crafted/{crafted.Id}" };
    }

    static IEnumerable<(ulong Value, string Label)> FieldValues(LengthField field, int fileLength)
    {
        foreach (var b in Boundaries) yield return (b, $"0x{b:X}");
        foreach (var d in new[] { -1, 0, 1 })
            yield return ((ulong)(long)(fileLength + d), $"filelen{d:+0;-0;+0}");
    }

    /// <summary>The seed with <paramref name="value"/> written into the field, or null when it does not fit the
    /// field's width (a 1-byte field takes only values below 256).</summary>
    public static byte[]? WriteField(byte[] bytes, LengthField field, ulong value)
    {
        if (field.Width == 0) return WriteVarint(bytes, field.Offset, value);
        if (field.Offset + field.Width > bytes.Length) return null;
        if (field.Width < 8 && value >> (8 * field.Width) != 0) return null;
        var copy = (byte[])bytes.Clone();
        var span = copy.AsSpan(field.Offset, field.Width);
        switch (field.Width, field.BigEndian)
        {
            case (1, _): span[0] = (byte)value; break;
            case (2, false): BinaryPrimitives.WriteUInt16LittleEndian(span, (ushort)value); break;
            case (2, true): BinaryPrimitives.WriteUInt16BigEndian(span, (ushort)value); break;
            case (4, false): BinaryPrimitives.WriteUInt32LittleEndian(span, (uint)value); break;
            case (4, true): BinaryPrimitives.WriteUInt32BigEndian(span, (uint)value); break;
            case (8, false): BinaryPrimitives.WriteUInt64LittleEndian(span, value); break;
            case (8, true): BinaryPrimitives.WriteUInt64BigEndian(span, value); break;
            default: throw new ArgumentException($"length field width {field.Width}");
        }
        return copy;
    }

    /// <summary>Replaces the LEB128 varint at <paramref name="offset"/> with the encoding of <paramref name="value"/>
    /// (the file grows or shrinks accordingly).</summary>
    static byte[]? WriteVarint(byte[] bytes, int offset, ulong value)
    {
        int end = offset;
        while (end < bytes.Length && (bytes[end] & 0x80) != 0) end++;
        if (end >= bytes.Length) return null;
        return [.. bytes.AsSpan(0, offset), .. Leb128(value), .. bytes.AsSpan(end + 1)];
    }

    /// <summary>Unsigned LEB128 (BinaryWriter's 7-bit encoding; TorchSharp's lengths).</summary>
    public static byte[] Leb128(ulong value)
    {
        var result = new List<byte>();
        do
        {
            byte b = (byte)(value & 0x7F);
            value >>= 7;
            result.Add(value != 0 ? (byte)(b | 0x80) : b);
        } while (value != 0);
        return [.. result];
    }

    /// <summary>A hash of a string that does not change between processes (string.GetHashCode does).</summary>
    public static int StableHash(string s)
    {
        unchecked
        {
            int h = (int)2166136261;
            foreach (char c in s) h = (h ^ c) * 16777619;
            return h;
        }
    }
}
