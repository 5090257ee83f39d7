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
        Assert.Equal(("jaccard_metric", 0.75), (jml.Type, jml.Weight));
        var jmlOptions = Assert.IsType<MetricLossOptions>(jml.Options);
        Assert.Equal((0.0, 0.5, 0.5), (jmlOptions.PerDataset, jmlOptions.PerImage, jmlOptions.PerClass));
        Assert.Equal((2.0, true, (ClassSelection?)ClassSelection.Present, 0.05), (jmlOptions.Gamma, jmlOptions.LogLoss, jmlOptions.Classes, jmlOptions.Threshold));
        Assert.Equal([1.0, 2.0], jmlOptions.ClassWeights!);
        var tversky = Assert.IsType<TverskyOptions>(c.Loss[2].Options);
        Assert.Equal((0.3, 0.7, 1.0, (ClassSelection?)null, 1.0), (tversky.Alpha, tversky.Beta, tversky.Gamma, tversky.Classes, tversky.PerDataset));
        Assert.Equal(0.5, Assert.IsType<MetricLossOptions>(c.Loss[3].Options).Smooth);
        Assert.True(Assert.IsType<LovaszSigmoidOptions>(c.Loss[4].Options).PerImage);
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
        var c = Parse("loss: [{ type: focal }, { type: tversky }, { type: jaccard_metric }, { type: lovasz_hinge }, { type: lovasz_sigmoid }, { type: lovasz_softmax }]");
        Assert.Equal(new FocalOptions(2.0, 1.0), c.Loss[0].Options);
        var tversky = Assert.IsType<TverskyOptions>(c.Loss[1].Options);
        Assert.Equal((1.0, 0.5, 0.5, 1.0, 0.01), (tversky.Gamma, tversky.Alpha, tversky.Beta, tversky.Smooth, tversky.Threshold));
        var jml = Assert.IsType<MetricLossOptions>(c.Loss[2].Options);
        Assert.Equal((1.0, 0.0, 0.0, (ClassSelection?)null, false), (jml.PerDataset, jml.PerImage, jml.PerClass, jml.Classes, jml.LogLoss));
        // The Lovász terms' per_image defaults are the library's: the reference's per-image hinge, batch-wide sigmoid and softmax.
        Assert.True(Assert.IsType<LovaszHingeOptions>(c.Loss[3].Options).PerImage);
        Assert.False(Assert.IsType<LovaszSigmoidOptions>(c.Loss[4].Options).PerImage);
        Assert.Equal(new LovaszSoftmaxOptions(ClassSelection.Present, false, 0), c.Loss[5].Options);
        Assert.True(new LovaszHingeLoss().PerImage);
        Assert.True(Assert.IsType<LovaszHingeLoss>(RunFactory.CreateLoss(c.Loss, 255, 3, "t.yaml").Terms[3].Loss).PerImage);
    }

    [Theory]
    [InlineData("lovasz_softmax", "[2, 0]", "Only(2,0)")]
    [InlineData("lovasz_softmax", "all", "All")]
    [InlineData("lovasz_softmax", "present", "Present")]
    [InlineData("jaccard_metric", "[1]", "Only(1)")]
    [InlineData("tversky", "auto", "")]
    public void ClassesTakePresentAllOrAListOfIds(string type, string classes, string expected)
    {
        var term = Parse($"loss: [{{ type: {type}, classes: {classes} }}]").Loss[0];
        var selection = term.Options switch
        {
            LovaszSoftmaxOptions o => o.Classes,
            MetricLossOptions o => o.Classes,
            _ => throw new InvalidOperationException(),
        };
        Assert.Equal(expected, selection?.ToString() ?? "");
        var loss = RunFactory.CreateLoss([term], 255, 3, "t.yaml").Terms[0].Loss;
        var built = loss switch
        {
            LovaszSoftmaxLoss l => l.Classes,
            JaccardMetricLoss j => j.Settings.Classes,
            TverskyLoss t => t.Settings.Classes,
            _ => throw new InvalidOperationException(),
        };
        Assert.Equal(selection, built);
    }

    [Theory]
    [InlineData("loss: [{ type: lovasz_softmax, classes: [0, 3] }]", "classes lists class id 3, but the run has 3 classes")]
    [InlineData("loss: [{ type: dice_metric, classes: [5] }]", "classes lists class id 5, but the run has 3 classes")]
    public void ClassIdsAreCheckedAgainstTheClasses(string yaml, string fragment)
    {
        var c = Parse(yaml);
        var e = Assert.Throws<ConfigException>(() => RunFactory.CreateLoss(c.Loss, 255, 3, "t.yaml"));
        Assert.Equal("loss[0]", e.KeyPath);
        Assert.Contains(fragment, e.Message);
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
    [InlineData("loss: [{ type: dice_metric, classes: some }]", "loss[0].classes", "is not one of auto, present, all or a list of class ids")]
    [InlineData("loss: [{ type: lovasz_softmax, classes: auto }]", "loss[0].classes", "is not one of present, all or a list of class ids")]
    [InlineData("loss: [{ type: lovasz_softmax, classes: [1, 1] }]", "loss[0].classes", "repeated class id")]
    [InlineData("loss: [{ type: lovasz_softmax, classes: [-1] }]", "loss[0].classes", "below the minimum 0")]
    [InlineData("loss: [{ type: lovasz_hinge, per_imag: false }]", "loss[0].per_imag", "closest valid key: 'loss[0].per_image'")]
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
        Assert.IsType<SoftmaxCrossEntropyLoss>(composite.Terms[0].Loss);
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
