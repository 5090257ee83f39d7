using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses.MarginSoftmax;

/// <summary>
/// Distillation loss with softened targets (Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural
/// Network", 2015): T²·KL(softmax(t/T) ‖ softmax(s/T)), the KL divergence from the teacher's softened distribution
/// to the student's, summed over classes (dimension 1) and averaged over samples or pixels. The T² factor keeps
/// the gradient magnitude independent of T. The teacher logits get no gradient. Inputs: (student, teacher) logits
/// of equal shape, [N,C] or [B,C,H,W].
/// </summary>
public sealed class SoftmaxWithTemperature : nn.Module<Tensor, Tensor, Tensor>
{
    /// <summary>The temperature T &gt; 0.</summary>
    public double Temperature { get; }

    /// <summary>Creates the loss.</summary>
    /// <param name="temperature">T &gt; 0 (Hinton et al. use values from 2 to 20).</param>
    public SoftmaxWithTemperature(double temperature = 4) : base(nameof(SoftmaxWithTemperature))
    {
        if (!(temperature > 0))
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "SoftmaxWithTemperature: temperature must be > 0.");
        Temperature = temperature;
    }

    /// <inheritdoc cref="SoftmaxWithTemperature"/>
    public override Tensor forward(Tensor student, Tensor teacher)
    {
        using var precision = LossInputs.FullPrecision(ref student, ref teacher);
        if (student.dim() < 2 || !student.shape.SequenceEqual(teacher.shape))
            throw new ArgumentException(
                $"SoftmaxWithTemperature: student and teacher logits must both be [N,C] or [B,C,H,W] of equal shape; " +
                $"got student {LossInputs.Shape(student)} and teacher {LossInputs.Shape(teacher)}.", nameof(teacher));
        using var scope = NewDisposeScope();
        var logStudent = nn.functional.log_softmax(student / Temperature, 1);
        var logTeacher = nn.functional.log_softmax(teacher.detach() / Temperature, 1);
        var kl = (logTeacher.exp() * (logTeacher - logStudent)).sum(1);
        return (kl.mean() * (Temperature * Temperature)).MoveToOuterDisposeScope();
    }
}
