using System.Globalization;
using Seg.Bench.Recipes;
using Seg.Tests.Train;
using Seg.Train.Config;
using Xunit;

namespace Seg.Tests.Bench;

/// <summary>
/// <c>Seg.Bench recipes</c> without training: the aggregation (mean ± sample standard deviation, the "beyond the
/// spread" rule, the table files) against hand-worked numbers, the verb's argument errors, and the shipped recipes
/// (valid configs on one budget).
/// </summary>
public class RecipeComparisonTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("seg-recipes-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    static RecipeRun Run(string recipe, int seed, double miou, double miouI = 0.5, double miouC = 0.5, double worst = 0.1) =>
        new(recipe, seed, new Dictionary<string, double> { ["mIoU"] = miou, ["mIoU_I"] = miouI, ["mIoU_C"] = miouC, ["mIoU_I_worst10"] = worst }, 60);

    [Fact]
    public void MeanStdOfThreeValues()
    {
        // 0.60, 0.62, 0.64: mean 0.62; deviations −0.02, 0, 0.02; (0.0004 + 0 + 0.0004) / (3 − 1) = 0.0004; √ = 0.02.
        var s = MeanStd.Of([0.60, 0.62, 0.64]);
        Assert.Equal(0.62, s.Mean, 12);
        Assert.Equal(0.02, s.Std, 12);
        Assert.Equal(3, s.Count);
        Assert.Equal("0.620 ± 0.020", s.ToString());
    }

    [Fact]
    public void MeanStdUsesTheSampleDenominator()
    {
        // 1, 2, 3, 4: mean 2.5; squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5; 5 / 3 = 1.6667 (n − 1), √ = 1.2910.
        var s = MeanStd.Of([1.0, 2.0, 3.0, 4.0]);
        Assert.Equal(2.5, s.Mean, 12);
        Assert.Equal(Math.Sqrt(5.0 / 3.0), s.Std, 12);
        Assert.Equal(1.290994, s.Std, 6);
    }

    [Fact]
    public void MeanStdOfOneValueHasNoSpreadAndOfNoneIsRefused()
    {
        Assert.Equal(new MeanStd(0.5, 0, 1), MeanStd.Of([0.5]));
        Assert.Throws<ArgumentException>(() => MeanStd.Of([]));
    }

    [Fact]
    public void BeyondSpreadNeedsTheMeansApartByMoreThanBothDeviations()
    {
        Assert.True(RecipeSummary.BeyondSpread(new MeanStd(0.71, 0.01, 3), new MeanStd(0.62, 0.02, 3)));    // 0.09 > 0.03
        Assert.False(RecipeSummary.BeyondSpread(new MeanStd(0.63, 0.01, 3), new MeanStd(0.62, 0.02, 3)));   // 0.01 < 0.03
        Assert.False(RecipeSummary.BeyondSpread(new MeanStd(0.75, 0.125, 3), new MeanStd(0.5, 0.125, 3))); // 0.25 = 0.25 (exact in binary): not beyond
    }

    [Fact]
    public void SummaryGroupsRunsByRecipeInTheGivenOrder()
    {
        var runs = new[]
        {
            Run("jml", 1, 0.71), Run("ce", 0, 0.60), Run("jml", 0, 0.70), Run("ce", 2, 0.64), Run("ce", 1, 0.62), Run("jml", 2, 0.72),
        };
        var summary = new RecipeSummary([("ce", "CE"), ("lovasz", "not run"), ("jml", "CE + JML")], runs);

        Assert.Equal(["ce", "jml"], summary.Rows.Select(r => r.Recipe));   // a recipe without runs is left out
        Assert.Equal([0, 1, 2], summary.Rows[0].Runs.Select(r => r.Seed));
        Assert.Equal(0.62, summary.Rows[0].Stats["mIoU"].Mean, 12);
        Assert.Equal(0.02, summary.Rows[0].Stats["mIoU"].Std, 12);
        Assert.Equal(0.71, summary.Rows[1].Stats["mIoU"].Mean, 12);
        Assert.Equal(0.01, summary.Rows[1].Stats["mIoU"].Std, 12);

        var md = summary.ToMarkdown();
        Assert.Contains("| `ce` | CE | 3 | 0.620 ± 0.020 | 0.500 ± 0.000 | 0.500 ± 0.000 | 0.100 ± 0.000 |", md);
        Assert.Contains("| `jml` | CE + JML | 3 | 0.710 ± 0.010 |", md);
        // Δ mIoU^D = +0.090 beyond 0.02 + 0.01; the other metrics are equal (not beyond a zero spread).
        Assert.Contains("| `jml` | **+0.090** | 0.000 | 0.000 | 0.000 |", md);
    }

    [Fact]
    public void DifferencesArePairedBySeed()
    {
        var runs = new[]
        {
            Run("ce", 0, 0.60), Run("ce", 1, 0.62), Run("ce", 2, 0.64),
            // mIoU^D: +0.10, +0.09, +0.08 → mean +0.09, std 0.01 (beyond). mIoU^I: +0.02, −0.01, +0.02 → mean +0.01,
            // squared deviations 0.0001 + 0.0004 + 0.0001 = 0.0006, / 2 → std √0.0003 = 0.0173 (not beyond).
            Run("jml", 2, 0.72, miouI: 0.52), Run("jml", 0, 0.70, miouI: 0.52), Run("jml", 1, 0.71, miouI: 0.49),
        };
        var summary = new RecipeSummary([("ce", "CE"), ("jml", "CE + JML")], runs);
        var (jml, ce) = (summary.Rows[1], summary.Rows[0]);

        var d = RecipeSummary.PairedDifference(jml, ce, "mIoU")!.Value;
        Assert.Equal((0.09, 0.01, 3), (Math.Round(d.Mean, 12), Math.Round(d.Std, 12), d.Count));
        Assert.True(RecipeSummary.BeyondSpread(d));
        var i = RecipeSummary.PairedDifference(jml, ce, "mIoU_I")!.Value;
        Assert.Equal(0.01, i.Mean, 12);
        Assert.Equal(Math.Sqrt(0.0003), i.Std, 12);
        Assert.False(RecipeSummary.BeyondSpread(i));
        Assert.Contains("| `jml` | **+0.090 ± 0.010** (3/3) | +0.010 ± 0.017 (2/3) | 0.000 ± 0.000 (0/3) |", summary.ToMarkdown());

        // One shared seed gives a difference but no spread, so never a finding; no shared seed gives none.
        var one = new RecipeSummary([("ce", ""), ("jml", "")], [Run("ce", 0, 0.6), Run("jml", 0, 0.7), Run("jml", 1, 0.7)]);
        Assert.False(RecipeSummary.BeyondSpread(RecipeSummary.PairedDifference(one.Rows[1], one.Rows[0], "mIoU")!.Value));
        var none = new RecipeSummary([("ce", ""), ("jml", "")], [Run("ce", 0, 0.6), Run("jml", 1, 0.7)]);
        Assert.Null(RecipeSummary.PairedDifference(none.Rows[1], none.Rows[0], "mIoU"));
    }

    [Fact]
    public void CsvAndJsonCarryTheSameFigures()
    {
        var summary = new RecipeSummary([("ce", "CE")], [Run("ce", 0, 0.60), Run("ce", 1, 0.62), Run("ce", 2, 0.64)]);
        var line = summary.ToCsv().Split('\n').Single(l => l.StartsWith("ce,mIoU,", StringComparison.Ordinal)).Split(',');
        Assert.Equal(0.62, double.Parse(line[2], CultureInfo.InvariantCulture), 12);
        Assert.Equal(0.02, double.Parse(line[3], CultureInfo.InvariantCulture), 12);
        Assert.Equal("3", line[4]);
        Assert.Equal([0.60, 0.62, 0.64], line[5].Split(';').Select(v => double.Parse(v, CultureInfo.InvariantCulture)));

        var json = System.Text.Json.Nodes.JsonNode.Parse(summary.ToJson())!["recipes"]![0]!;
        Assert.Equal(0.62, json["mean"]!["mIoU"]!.GetValue<double>(), 12);
        Assert.Equal(0.02, json["std"]!["mIoU"]!.GetValue<double>(), 12);
        Assert.Equal(3, json["runs"]!.AsArray().Count);
    }

    [Fact]
    public void MetricsJsonWithoutAFieldIsRefusedNamingIt()
    {
        var path = Path.Combine(dir, "metrics.json");
        File.WriteAllText(path, """{"mIoU": 0.6, "mIoU_I": 0.5, "mIoU_C": 0.4}""");
        var e = Assert.Throws<InvalidDataException>(() => RecipeRun.FromMetricsJson("ce", 0, path, 1));
        Assert.Contains("mIoU_I_worst10", e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void OptionsDefaultsAndValues()
    {
        var d = RecipeOptions.Parse([]);
        Assert.Equal((3, Path.Combine("configs", "recipes"), Path.Combine("runs", "recipes"), (int?)null, false), (d.Seeds, d.Recipes, d.Output, d.Iterations, d.Reuse));
        var o = RecipeOptions.Parse(["--seeds", "5", "--iterations", "200", "--threads", "2", "--output", "out", "--only", "a, b", "--reuse"]);
        Assert.Equal((5, 200, 2, "out", true), (o.Seeds, o.Iterations!.Value, o.Threads!.Value, o.Output, o.Reuse));
        Assert.Equal(["a", "b"], o.Only!);
    }

    [Theory]
    [InlineData("--seeds", "0", "--seeds: expected a positive integer, got '0'")]
    [InlineData("--seeds", "three", "--seeds: expected a positive integer, got 'three'")]
    [InlineData("--iterations", "-5", "--iterations: expected a positive integer, got '-5'")]
    [InlineData("--bogus", null, "unknown argument '--bogus'")]
    [InlineData("--output", null, "--output needs a value")]
    public void BadArgumentsAreRefusedNamingTheOption(string option, string? value, string expected)
    {
        string[] args = value is null ? [option] : [option, value];
        var e = Assert.Throws<ArgumentException>(() => RecipeOptions.Parse(args));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void AValueMissingBeforeTheNextOptionIsRefused()
    {
        var e = Assert.Throws<ArgumentException>(() => RecipeOptions.Parse(["--seeds", "--reuse"]));
        Assert.Contains("--seeds needs a value", e.Message);
    }

    [Fact]
    public void RecipeFolderErrorsNameTheFolderOrRecipe()
    {
        var missing = Path.Combine(dir, "nope");
        Assert.Contains(missing, Assert.Throws<ArgumentException>(() => RecipeComparison.LoadRecipes(new RecipeOptions { Recipes = missing })).Message);
        Assert.Contains("no *.yaml", Assert.Throws<ArgumentException>(() => RecipeComparison.LoadRecipes(new RecipeOptions { Recipes = dir })).Message);

        File.WriteAllText(Path.Combine(dir, "2_b.yaml"), "# recipe B\nname: b\n");
        File.WriteAllText(Path.Combine(dir, "1_a.yaml"), "# recipe A\nname: a\n");
        var all = RecipeComparison.LoadRecipes(new RecipeOptions { Recipes = dir });
        Assert.Equal([("1_a", "recipe A"), ("2_b", "recipe B")], all.Select(r => (r.Name, r.Description)));
        var e = Assert.Throws<ArgumentException>(() => RecipeComparison.LoadRecipes(new RecipeOptions { Recipes = dir, Only = ["1_a", "3_c"] }));
        Assert.Contains("'3_c'", e.Message);
        Assert.Contains("1_a, 2_b", e.Message);
    }

    [Fact]
    public void DataSeedIsOptionalAndChecked()
    {
        Assert.Null(ConfigLoader.Parse("data: { type: shapes }", "t.yaml").Data.Seed);
        Assert.Equal(7, ConfigLoader.Parse("data: { type: shapes, seed: 7 }", "t.yaml").Data.Seed);
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse("data: { type: shapes, seed: one }", "t.yaml"));
        Assert.Contains("data.seed", e.Message);
    }

    [Fact]
    public void ShippedRecipesAreValidAndShareOneBudget()
    {
        var folder = Path.Combine(ConfigLoaderTests.FindConfigsDirectory(), "recipes");
        var recipes = RecipeComparison.LoadRecipes(new RecipeOptions { Recipes = folder });
        Assert.Equal(5, recipes.Count);
        var configs = recipes.Select(r => ConfigLoader.Parse(r.Yaml, r.Path)).ToList();
        // Everything but the loss terms and data.soft_labels is the same in every recipe.
        static object Budget(TrainConfig c) => (c.Model.Name, c.Model.UnetDepth, c.Model.UnetBaseWidth, c.Data.Type, c.Data.Size, c.Data.Seed,
            c.Data.TrainCount, c.Data.ValCount, c.Data.BatchSize, c.Optimizer.Type, c.Optimizer.Lr, c.Schedule.Type, c.Train.Iterations,
            c.Train.Threads, c.Eval.Mode);
        Assert.All(configs, c => Assert.Equal(Budget(configs[0]), Budget(c)));
        Assert.NotNull(configs[0].Data.Seed);   // the scenes stay fixed across seeds
        Assert.Equal(1, configs.Count(c => c.Data.SoftLabels is not null));
    }
}
