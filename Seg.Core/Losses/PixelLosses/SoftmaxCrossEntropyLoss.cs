using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Losses.PixelLosses;

/// <summary>
/// Softmax cross-entropy with class weights, an ignore index, label smoothing and a temperature T that divides the
/// logits: per pixel (1−ε)·w_y·(−log p_y) + (ε/C)·Σ_c w_c·(−log p_c), p = softmax(logits/T), averaged as
/// PyTorch's <c>cross_entropy</c> does (sum over non-ignored pixels divided by the sum of their w_y, i.e. the plain
/// mean without weights), computed by ATen's fused kernel. A batch without non-ignored pixels gives 0 (PyTorch gives NaN). Takes logits
/// [B,C,H,W] with labels [B,H,W], or [N,C] with [N]. (Named apart from TorchSharp's
/// <c>TorchSharp.Modules.CrossEntropyLoss</c>, so that both namespaces can be imported; the former name
/// <see cref="CrossEntropyLoss"/> stays for one release.)
/// </summary>
public class SoftmaxCrossEntropyLoss : nn.Module<Tensor, Tensor, Tensor>
{
    readonly double[]? classWeights;
    Tensor? weightTensor;

    /// <summary>Creates the loss.</summary>
    /// <param name="classWeights">One weight per class, or null for 1.</param>
    /// <param name="ignoreIndex">Label of pixels to leave out (default 255), or null for none.</param>
    /// <param name="labelSmoothing">ε in [0,1].</param>
    /// <param name="temperature">T &gt; 0 dividing the logits.</param>
    /// <param name="name">Module name.</param>
    public SoftmaxCrossEntropyLoss(IReadOnlyList<double>? classWeights = null, long? ignoreIndex = 255,
                                   double labelSmoothing = 0.0, double temperature = 1.0, string name = "cross_entropy") : base(name)
    {
        if (!(labelSmoothing >= 0 && labelSmoothing <= 1))
            throw new ArgumentOutOfRangeException(nameof(labelSmoothing), labelSmoothing, "label smoothing must lie in [0,1].");
        if (!(temperature > 0) || double.IsInfinity(temperature))
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "temperature must be positive and finite.");
        if (classWeights is not null && classWeights.Any(w => !(w >= 0) || double.IsInfinity(w)))
            throw new ArgumentException($"class weights must be finite and non-negative: [{string.Join(",", classWeights)}].", nameof(classWeights));
        this.classWeights = classWeights?.ToArray();
        IgnoreIndex = ignoreIndex;
        LabelSmoothing = labelSmoothing;
        Temperature = temperature;
    }

    /// <summary>Class weights, or null.</summary>
    public IReadOnlyList<double>? ClassWeights => classWeights;
    /// <summary>Ignored label, or null.</summary>
    public long? IgnoreIndex { get; }
    /// <summary>Label smoothing ε.</summary>
    public double LabelSmoothing { get; }
    /// <summary>Temperature T.</summary>
    public double Temperature { get; }

    /// <summary>The class weights as a tensor of <paramref name="dtype"/> on <paramref name="device"/>, made once per
    /// device and dtype: copying them in every call would make the host wait for the device each time.</summary>
    Tensor WeightTensor(ScalarType dtype, Device device)
    {
        if (weightTensor is null || weightTensor.dtype != dtype || weightTensor.device_type != device.type || weightTensor.device_index != device.index)
        {
            weightTensor?.Dispose();
            weightTensor = tensor(classWeights!, dtype: dtype, device: device).DetachFromDisposeScope();
        }
        return weightTensor;
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor logits, Tensor labels)
    {
        using var precision = LossInputs.FullPrecision(ref logits);
        using var scope = NewDisposeScope();
        var (x, y) = LossInputs.MultiClass(logits, labels);
        long classes = x.shape[1];
        if (classWeights is not null && classWeights.Length != classes)
            throw new ArgumentException($"{classWeights.Length} class weights for logits {LossInputs.Shape(logits)} with {classes} classes.", nameof(logits));
        var work = LossInputs.WorkType(x);
        var valid = LossInputs.CheckedValidMask(y, IgnoreIndex, classes, $"logits {LossInputs.Shape(logits)}");
        long ignoreIndex = IgnoreIndex ?? -100;   // labels were checked, so −100 never matches when nothing is ignored
        // Where the label check is deferred (off the CPU), the labels it found bad are ignored here rather than
        // handed to ATen's kernel, whose device-side assert would end the process's use of the device.
        var target = LabelChecks.Defers(y) ? y.masked_fill(~valid, ignoreIndex) : y;

        var scaled = Temperature == 1.0 ? x.to(work) : x.to(work) / Temperature;
        var weights = classWeights is null ? null : WeightTensor(work, x.device);
        // The mean's denominator is computed here, so that an all-ignored batch gives 0/1 instead of ATen's 0/0.
        var denominator = weights is null
            ? valid.sum().to(work)
            : weights.gather(0, y.masked_fill(~valid, 0).flatten()).mul(valid.flatten().to(work)).sum();
        // ATen's fused kernel with a sum.
        var total = nn.functional.cross_entropy(scaled, target, weights, ignore_index: ignoreIndex,
                                                reduction: nn.Reduction.Sum, label_smoothing: LabelSmoothing);
        var loss = total / denominator.masked_fill(denominator.eq(0), 1);
        return loss.to(logits.dtype).MoveToOuterDisposeScope();
    }
}
