using System.Buffers.Binary;

namespace Seg.Train.Checkpoints;

/// <summary>
/// Checks bytes meant for <c>torch.random.set_rng_state</c> before libtorch sees them. libtorch reports a bad
/// state with a C++ exception that TorchSharp does not catch there, so the process aborts; and its own validity
/// test lets through (left, next) pairs with which the Mersenne Twister reads past its 624 words.
/// </summary>
/// <remarks>
/// The layout is libtorch's <c>CPUGeneratorImplState</c> (ATen/CPUGeneratorImpl.cpp) on 64-bit hosts:
/// <code>
///   0  u64 the_initial_seed      5016 f64 normal_x
///   8  i32 left                  5024 f64 normal_y
///  12  i32 seeded                5032 f64 normal_rho
///  16  u64 next                  5040 i32 normal_is_valid
///  24  u64 state[624]            5048 f32 next_float_normal_sample, 5052 bool is_next_float_normal_sample_valid
/// </code>
/// 5056 bytes in all. mt19937 draws a word as <c>if (--left == 0) refill (left = 624, next = 0); word = state[next++]</c>,
/// so a state it produced has left + next = 625, or is freshly seeded (left 1, next 0). A test checks these offsets
/// against live states.
/// </remarks>
internal static class CpuRngState
{
    public const int Size = 5056;
    const int StateWords = 624;

    /// <summary>What is wrong with <paramref name="state"/>, or null when libtorch can take it safely.</summary>
    public static string? Problem(ReadOnlySpan<byte> state)
    {
        if (state.Length != Size)
            return $"its RNG state is {state.Length} bytes; torch's CPU generator state is {Size} bytes";
        var left = BinaryPrimitives.ReadInt32LittleEndian(state[8..]);
        var seeded = BinaryPrimitives.ReadInt32LittleEndian(state[12..]);
        var next = BinaryPrimitives.ReadUInt64LittleEndian(state[16..]);
        if (seeded == 0) return "its RNG state is marked unseeded";
        if (left is < 1 or > StateWords) return $"its RNG state has left = {left}, outside [1, {StateWords}]";
        if (next > StateWords) return $"its RNG state has next = {next}, outside [0, {StateWords}]";
        if (!(left == 1 && next == 0) && left + (long)next != StateWords + 1)
            return $"its RNG state has left = {left} and next = {next}, which no generator produces (left + next must be {StateWords + 1})";
        if (state[5052] > 1) return $"its RNG state has a flag byte of {state[5052]} where 0 or 1 belongs";
        return null;
    }
}
