using Seg.Core.Losses;
using Seg.Core.Losses.LovaszLosses;
using Seg.Core.Losses.MetricLosses;
using Seg.Core.Losses.PixelLosses;
using Seg.Train.Config;
using Seg.Train.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Tests.Train;

/// <summary>The metric-loss, multi-label Lovász and soft-label config keys: parsing, validation and wiring.</summary>
public class LossConfigTests
{
    static TrainConfig Parse(string yaml) => ConfigLoader.Parse(yaml, "t.yaml");

    [Fact]
    public void MetricTermsReadTheirKeys()
    {
        var c = Parse("""
            loss:
              - { type: cross_entropy, weight: 0.25 }
              - { type: jaccard_metric, weight: 0.75, per_dataset: 0, per_image: 0.5, per_class: 0.5, gamma: 2, log_loss: true, classes: present, threshold: 0.05, class_weights: [1, 2] }
              - { type: tversky, alpha: 0.3, beta: 0.7 }
              - { type: dice_metric, smooth: 0.5 }
              - { type: lovasz_sigmoid, per_image: true }
            data: { soft_labels: { type: boundary, epsilon: 0.4, kernel: 5 } }
            """);
        var jml = c.Loss[1];
        Assert.Equal(("jaccard_metric", 0.75, 0.0, 0.5, 0.5), (jml.Type, jml.Weight, jml.PerDataset, jml.PerImageWeight, jml.PerClass));
        Assert.Equal((2.0, true, "present", 0.05), (jml.Gamma, jml.LogLoss, jml.Classes, jml.Threshold));
        Assert.Equal([1.0, 2.0], jml.ClassWeights!);
        Assert.Equal((0.3, 0.7, 1.0, "auto", 1.0), (c.Loss[2].Alpha, c.Loss[2].Beta, c.Loss[2].Gamma, c.Loss[2].Classes, c.Loss[2].PerDataset));
        Assert.Equal(0.5, c.Loss[3].Smooth);
        Assert.True(c.Loss[4].PerImage);
        Assert.Equal(new SoftLabelsConfig { Type = "boundary", Epsilon = 0.4, Kernel = 5 }, c.Data.SoftLabels);
        Assert.Null(Parse("loss: [{ type: jaccard_metric }]").Data.SoftLabels);
    }

    [Fact]
    public void ReadmeRecipeParses()
    {
        var c = Parse("""
            loss:
              - { type: cross_entropy, weight: 0.25 }
              - { type: jaccard_metric, weight: 0.75 }
            data: { soft_labels: { type: boundary, epsilon: 0.5, kernel: 3 } }
            """);
        Assert.Equal(["cross_entropy", "jaccard_metric"], c.Loss.Select(t => t.Type));
        Assert.Equal(new SoftLabelsConfig(), c.Data.SoftLabels);
    }

    [Fact]
    public void DefaultsFollowTheType()
    {
        var c = Parse("loss: [{ type: focal }, { type: tversky }, { type: jaccard_metric }]");
        Assert.Equal((2.0, 1.0), (c.Loss[0].Gamma, c.Loss[0].Alpha));
        Assert.Equal((1.0, 0.5, 0.5, 1.0, 0.01), (c.Loss[1].Gamma, c.Loss[1].Alpha, c.Loss[1].Beta, c.Loss[1].Smooth, c.Loss[1].Threshold));
        Assert.Equal((1.0, 0.0, 0.0, "auto", false), (c.Loss[2].PerDataset, c.Loss[2].PerImageWeight, c.Loss[2].PerClass, c.Loss[2].Classes, c.Loss[2].LogLoss));
    }

    [Theory]
    [InlineData("loss: [{ type: jaccard_metric, beta: 0.3 }]", "loss[0].beta", "unknown key for a 'jaccard_metric' term")]
    [InlineData("loss: [{ type: tversky, alpah: 0.3 }]", "loss[0].alpah", "closest valid key: 'loss[0].alpha'")]
    [InlineData("loss: [{ type: cross_entropy, bins: 8 }]", "loss[0].bins", "unknown key for a 'cross_entropy' term")]
    [InlineData("loss: [{ type: lovasz_sigmoid, classes: all }]", "loss[0].classes", "unknown key for a 'lovasz_sigmoid' term")]
    [InlineData("loss: [{ type: jaccard_metric, per_image: true }]", "loss[0].per_image", "weight of the per-image aggregation")]
    [InlineData("loss: [{ type: dice_metric, per_dataset: 0 }]", "loss[0].per_dataset", "all 0")]
    [InlineData("loss: [{ type: tversky, gamma: 0.5 }]", "loss[0].gamma", "out of range [1,")]
    [InlineData("loss: [{ type: jaccard_metric, smooth: 0 }]", "loss[0].smooth", "must be positive")]
    [InlineData("loss: [{ type: jaccard_metric, threshold: 1 }]", "loss[0].threshold", "not below 1")]
    [InlineData("loss: [{ type: dice_metric, classes: some }]", "loss[0].classes", "is not one of auto, present, all")]
    [InlineData("loss: [{ type: jacard_metric }]", "loss[0].type", "closest valid value: 'jaccard_metric'")]
    [InlineData("loss: [{ type: tversky, alpha: -1 }]", "loss[0].alpha", "out of range")]
    [InlineData("loss: [{ type: jaccard_metric }]\ndata: { soft_labels: { type: boundry } }", "data.soft_labels.type", "closest valid value: 'boundary'")]
    [InlineData("loss: [{ type: jaccard_metric }]\ndata: { soft_labels: { kernel: 4 } }", "data.soft_labels.kernel", "must be odd")]
    [InlineData("loss: [{ type: jaccard_metric }]\ndata: { soft_labels: { epsilon: 1.5 } }", "data.soft_labels.epsilon", "out of range")]
    [InlineData("loss: [{ type: jaccard_metric }]\ndata: { soft_labels: { epsilom: 0.1 } }", "data.soft_labels.epsilom", "closest valid key: 'data.soft_labels.epsilon'")]
    [InlineData("loss: [{ type: jaccard_metric }]\ndata: { soft_labels: boundary }", "data.soft_labels", "expected a mapping")]
    [InlineData("loss: [{ type: cross_entropy }, { type: lovasz_softmax }]\ndata: { soft_labels: { type: boundary } }", "data.soft_labels", "no loss term takes soft labels")]
    public void BadValueNamesKeyPath(string yaml, string path, string fragment)
    {
        var e = Assert.Throws<ConfigException>(() => Parse(yaml));
        Assert.Equal(path, e.KeyPath);
        Assert.Contains(fragment, e.Message);
    }

    [Fact]
    public void RunFactoryBuildsTheTermsAndFeedsSoftLabelsToMetricTermsOnly()
    {
        Seg.Core.SegRuntime.Initialize();
        var c = Parse("""
            loss:
              - { type: cross_entropy, weight: 0.25 }
              - { type: jaccard_metric, weight: 0.75, per_dataset: 0, per_image: 1, classes: present }
              - { type: tversky, alpha: 0.3, beta: 0.7, gamma: 2 }
              - { type: lovasz_sigmoid, per_image: true }
            data: { soft_labels: { epsilon: 0.5, kernel: 3 } }
            """);
        var composite = RunFactory.CreateLoss(c.Loss, 255, 3, "t.yaml", softLabels: c.Data.SoftLabels);
        Assert.IsType<CrossEntropyLoss>(composite.Terms[0].Loss);
        var jml = Assert.IsType<JaccardMetricLoss>(Assert.IsType<SoftLabelTerm>(composite.Terms[1].Loss).loss);
        Assert.Equal((0.0, 1.0, (ClassSelection?)ClassSelection.Present), (jml.Settings.PerDataset, jml.Settings.PerImage, jml.Settings.Classes));
        var tversky = Assert.IsType<TverskyLoss>(Assert.IsType<SoftLabelTerm>(composite.Terms[2].Loss).loss);
        Assert.Equal((0.3, 0.7, 2.0, (ClassSelection?)null), (tversky.Settings.Alpha, tversky.Settings.Beta, tversky.Settings.Gamma, tversky.Settings.Classes));
        Assert.True(Assert.IsType<LovaszSigmoidLoss>(composite.Terms[3].Loss).PerImage);

        // The wrapped term sees the boundary-smoothed labels.
        var logits = randn(2, 3, 6, 6, dtype: ScalarType.Float64);
        var labels = randint(0, 3, [2, 6, 6]);
        var soft = SoftLabels.BoundarySmoothing(labels, 3, 0.5, 3, 255);
        Assert.Equal(jml.call(logits, soft).item<double>(), composite.Terms[1].Loss.call(logits, labels).item<double>(), 12);

        // Without data.soft_labels the metric terms take the hard labels.
        var hard = RunFactory.CreateLoss(c.Loss, 255, 3, "t.yaml");
        Assert.IsType<JaccardMetricLoss>(hard.Terms[1].Loss);
    }

    [Fact]
    public void ClassWeightCountIsCheckedAgainstTheClasses()
    {
        var c = Parse("loss: [{ type: dice_metric, class_weights: [1, 2] }]");
        var e = Assert.Throws<ConfigException>(() => RunFactory.CreateLoss(c.Loss, 255, 3, "t.yaml"));
        Assert.Equal("loss[0]", e.KeyPath);
        Assert.Contains("2 class weights given for 3 classes", e.Message);
    }
}

[Collection("Trainer")]
public class MetricLossTrainingTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("seg-jml-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void JmlWithBoundarySmoothingAndLovaszSigmoidTrain()
    {
        var output = Path.Combine(dir, "run");
        var outcome = Trainer.Run(TinyRun.Request(output, false,
            "loss=[{ type: cross_entropy, weight: 0.25 }, { type: jaccard_metric, weight: 0.75, per_image: 0.5, per_class: 0.5 }, { type: lovasz_sigmoid, start: 0.5 }]",
            "data.soft_labels={ type: boundary, epsilon: 0.5, kernel: 3 }", "train.eval_every=0"));
        Assert.Equal(TrainStatus.Completed, outcome.Status);
        var lines = File.ReadAllLines(Path.Combine(output, "train_log.csv"));
        Assert.Equal("iteration,loss,cross_entropy,jaccard_metric,lovasz_sigmoid,lr", lines[0]);
        foreach (var line in lines[1..])
        {
            var jml = double.Parse(line.Split(',')[3], System.Globalization.CultureInfo.InvariantCulture);
            Assert.InRange(jml, 0.0, 2.0);   // three aggregations with weights 1 + 0.5 + 0.5, each in [0,1]
        }
    }
}
