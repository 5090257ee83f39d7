using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses;

/// <summary>
/// One named term of a <see cref="CompositeLoss"/>: <paramref name="Weight"/> × <paramref name="Loss"/> while
/// training progress lies in [<paramref name="Start"/>, <paramref name="End"/>) (End = 1 includes 1).
/// </summary>
/// <param name="Name">Unique name, used for logging and as the submodule name.</param>
/// <param name="Loss">The loss module (logits, labels) → scalar.</param>
/// <param name="Weight">Factor of the term while active.</param>
/// <param name="Start">Progress at which the term starts, in [0,1].</param>
/// <param name="End">Progress at which it stops, in (Start,1].</param>
public sealed record LossTerm(string Name, nn.Module<Tensor, Tensor, Tensor> Loss, double Weight = 1.0, double Start = 0.0, double End = 1.0);
