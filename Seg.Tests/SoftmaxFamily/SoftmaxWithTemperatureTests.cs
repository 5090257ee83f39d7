using Seg.Core;
using Seg.Core.Losses;
using Seg.Core.Losses.MarginSoftmax;
using static Seg.Tests.SoftmaxFamily.Oracle;
using static TorchSharp.torch;

namespace Seg.Tests.SoftmaxFamily;

public class SoftmaxWithTemperatureTests
{
    public SoftmaxWithTemperatureTests() => SegRuntime.Initialize();

    static readonly double[][] Student = [[1.0, 2.0, 0.5], [-1.0, 0.0, 3.0]];
    static readonly double[][] Teacher = [[2.0, 0.5, 0.0], [0.0, 1.0, 1.5]];

    static double[] Softmax(double[] z, double t)
    {
        var e = z.Select(v => Math.Exp(v / t)).ToArray();
        return e.Select(v => v / e.Sum()).ToArray();
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(4.0)]
    public void LossIsTSquaredTimesTheMeanKL(double t)
    {
        var expected = Student.Select((s, i) =>
        {
            var (p, q) = (Softmax(Teacher[i], t), Softmax(s, t));
            return p.Select((pj, j) => pj * Math.Log(pj / q[j])).Sum();
        }).Average() * t * t;
        using var loss = new SoftmaxWithTemperature(t);
        using var value = loss.forward(T(Student), T(Teacher));
        Close(expected, value.item<double>());
    }

    [Fact]
    public void GradientIsTTimesTheProbabilityGapAndTeacherGetsNone()
    {
        // d/ds_j of T²·KL = T·(softmax(s/T)_j − softmax(t/T)_j), divided by the N = 2 samples of the mean.
        const double t = 3;
        using var student = T(Student).requires_grad_();
        using var teacher = T(Teacher).requires_grad_();
        using var loss = new SoftmaxWithTemperature(t);
        loss.forward(student, teacher).backward();
        var expected = Student.SelectMany((s, i) =>
            Softmax(s, t).Zip(Softmax(Teacher[i], t), (q, p) => t * (q - p) / 2)).ToArray();
        Close(expected, Values(student.grad!));
        Assert.Null(teacher.grad);
    }

    [Fact]
    public void MismatchedShapesAreAClearError()
    {
        using var loss = new SoftmaxWithTemperature();
        var error = Assert.Throws<ArgumentException>(() => loss.forward(zeros(2, 3), zeros(2, 4)));
        Assert.Contains("[2,3]", error.Message);
        Assert.Contains("[2,4]", error.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new SoftmaxWithTemperature(0));
    }
}
