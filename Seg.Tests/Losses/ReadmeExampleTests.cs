using Seg.Core;
using Seg.Core.Losses;
using Seg.Core.Losses.LovaszLosses;
using Seg.Core.Losses.MetricLosses;
using Seg.Core.Losses.PixelLosses;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Tests.Losses;

/// <summary>Runs the loss-library examples: the first is README.md's (section "losses", which .ci/external-smoke.sh also
/// compiles), the second docs/losses.md's metric-loss example; keep them in sync.</summary>
public class ReadmeExampleTests
{
    [Fact]
    public void ReadmeLossExampleRuns()
    {
        // --- README example begins ---
        SegRuntime.Initialize();                       // once, before the first TorchSharp call

        var logits = torch.randn(2, 21, 64, 64, requires_grad: true);   // [B,C,H,W] scores of a model
        var labels = torch.randint(0, 21, [2, 64, 64]);                  // [B,H,W] class ids, 255 = ignore

        // Functional form on probabilities: exact, or within 1/bins of exact in histogram mode.
        var exact = Lovasz.Softmax(logits.softmax(1), labels, ClassSelection.Present, ignoreIndex: 255);
        var approx = Lovasz.Softmax(logits.softmax(1), labels, bins: 4096, ignoreIndex: 255);

        // Module form: cross-entropy alone, then + Lovász-Softmax from 50 % of training.
        var loss = new CompositeLoss([
            new LossTerm("ce", new SoftmaxCrossEntropyLoss(ignoreIndex: 255)),
            new LossTerm("lovasz", new LovaszSoftmaxLoss(perImage: true), Weight: 1.0, Start: 0.5)]);
        var value = loss.call(logits, labels, progress: 0.6);   // progress through training, 0 to 1
        value.backward();
        foreach (var (name, term) in loss.LastValues) Console.WriteLine($"{name}: {term:F4}");
        // --- README example ends ---

        Assert.InRange(Math.Abs(exact.item<float>() - approx.item<float>()), 0, 1.0 / 4096 + 1e-5);
        Assert.Equal(new[] { "ce", "lovasz" }, loss.LastValues.Keys.OrderBy(k => k));
        Assert.True(logits.grad!.isfinite().all().item<bool>());
    }

    [Fact]
    public void ReadmeMetricLossExampleRuns()
    {
        SegRuntime.Initialize();
        var logits = torch.randn(2, 21, 64, 64, requires_grad: true);
        var labels = torch.randint(0, 21, [2, 64, 64]);
        // --- README example begins ---
        var jml = new JaccardMetricLoss(perDataset: 0, perImage: 0.5, perClass: 0.5);      // targets mIoU^I and mIoU^C
        var soft = SoftLabels.BoundarySmoothing(labels, numClasses: 21, epsilon: 0.5, kernel: 3);
        var mixed = 0.25 * new SoftmaxCrossEntropyLoss().call(logits, labels) + 0.75 * jml.call(logits, soft);
        var tversky = MetricLoss.Tversky(logits, labels, alpha: 0.3, beta: 0.7, gamma: 2);  // functional form
        // --- README example ends ---

        mixed.backward();
        Assert.True(logits.grad!.isfinite().all().item<bool>());
        Assert.InRange(tversky.item<float>(), 0f, 1f);
    }
}
