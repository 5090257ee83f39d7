namespace Seg.Core.Losses.MarginSoftmax;

/// <summary>
/// The λ schedule of the official L-Softmax implementation (Liu et al. 2016, caffe <c>LargeMarginInnerProduct</c>):
/// λ = max(λ_min, base·(1 + γ·iteration)^(−power)). A large λ makes the target logit almost the plain W_y·x, so
/// training starts as softmax and the margin grows as λ falls.
/// </summary>
/// <param name="Base">λ at iteration 0.</param>
/// <param name="Gamma">γ.</param>
/// <param name="Power">The decay exponent.</param>
/// <param name="LambdaMin">The floor λ_min.</param>
public sealed record LargeMarginAnnealing(double Base = 1000, double Gamma = 2.5e-5, double Power = 35, double LambdaMin = 0)
{
    /// <summary>λ at the given (0-based) training iteration.</summary>
    public double LambdaAt(long iteration) => Math.Max(LambdaMin, Base * Math.Pow(1 + Gamma * iteration, -Power));
}
