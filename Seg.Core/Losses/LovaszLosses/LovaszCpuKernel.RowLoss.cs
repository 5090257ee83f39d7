using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses.LovaszLosses;

internal static unsafe partial class LovaszCpuKernel
{
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
}
