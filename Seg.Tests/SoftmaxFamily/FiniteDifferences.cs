using static TorchSharp.torch;

namespace Seg.Tests.SoftmaxFamily;

/// <summary>Compares autograd gradients with central finite differences (float64 leaves only).</summary>
internal static class FiniteDifferences
{
    /// <summary>
    /// Checks d loss / d leaf for every element of every leaf: autograd against (L(x+h) − L(x−h)) / 2h.
    /// </summary>
    internal static void Check(Func<Tensor> loss, params Tensor[] leaves)
    {
        foreach (var leaf in leaves)
        {
            Assert.Equal(ScalarType.Float64, leaf.dtype);
            leaf.grad?.zero_();
        }
        using (var value = loss()) value.backward();
        const double h = 1e-6;
        foreach (var leaf in leaves)
        {
            var analytic = Oracle.Values(leaf.grad!);
            using var flat = leaf.detach().view(-1); // shares storage with the leaf
            var data = flat.data<double>();
            for (var i = 0; i < analytic.Length; i++)
            {
                var original = data[i];
                double Eval(double x)
                {
                    data[i] = x;
                    using var _ = no_grad();
                    using var v = loss();
                    return v.item<double>();
                }
                var numeric = (Eval(original + h) - Eval(original - h)) / (2 * h);
                data[i] = original;
                Assert.True(Math.Abs(numeric - analytic[i]) <= 1e-6 * (1 + Math.Abs(numeric)),
                    $"gradient element {i} of a [{string.Join(",", leaf.shape)}] leaf: autograd {analytic[i]:R}, finite differences {numeric:R}");
            }
        }
    }
}
