using System.Text;
using static TorchSharp.torch;

namespace Seg.Tests.Models;

/// <summary>
/// The deterministic "pattern" weights of Fixtures/zoo/make_zoo_fixtures.py, computed here the same way: per key,
/// u = hash(key, index) mod 2001 − 1000 with 32-bit integer arithmetic, value = A + B·u in float32 (one multiply,
/// one add, both correctly rounded, so bit-identical to numpy). The outputs they are compared with come from
/// torchvision; this class only reproduces the inputs (the weights) without committing hundreds of MB of them.
/// </summary>
internal static class PatternWeights
{
    static uint Fnv1a(string key)
    {
        uint h = 0x811C9DC5;
        foreach (var b in Encoding.UTF8.GetBytes(key)) h = unchecked((h ^ b) * 0x01000193);
        return h;
    }

    public static float[] Values(string key, long[] shape)
    {
        long n = shape.Aggregate(1L, (a, b) => a * b);
        (double a, double b) = key switch
        {
            _ when key.EndsWith("running_var", StringComparison.Ordinal) => (1.0, 0.0005),
            _ when key.EndsWith("running_mean", StringComparison.Ordinal) => (0.0, 0.0001),
            _ when key.EndsWith("layer_scale", StringComparison.Ordinal) => (0.0, 0.0005),
            _ when shape.Length >= 2 => (0.0, Math.Sqrt(6.0 / (n / shape[0])) / 1000.0),
            _ when key.EndsWith("weight", StringComparison.Ordinal) => (1.0, 0.0005),
            _ => (0.0, 0.0001),
        };
        float fa = (float)a, fb = (float)b;
        uint seed = Fnv1a(key);
        var values = new float[n];
        for (long i = 0; i < n; i++)
        {
            uint h = unchecked(seed + (uint)i * 2654435761u);
            h ^= h >> 16;
            h = unchecked(h * 0x45D9F3Bu);
            h ^= h >> 16;
            float u = (int)(h % 2001) - 1000;
            values[i] = fa + fb * u;
        }
        return values;
    }

    /// <summary>Fills every floating-point parameter and buffer of <paramref name="model"/> with its pattern.</summary>
    public static void Fill(nn.Module model)
    {
        using var _ = no_grad();
        foreach (var (key, t) in model.state_dict())
            if (t.is_floating_point())
                t.copy_(tensor(Values(key, t.shape), t.shape));
    }
}
