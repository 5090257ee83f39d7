using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Seg.Bench.Recipes;

/// <summary>The validation scores of one finished run (one recipe, one seed), read from its <c>metrics.json</c>.</summary>
/// <param name="Recipe">The recipe's name (its file name without <c>.yaml</c>).</param>
/// <param name="Seed">The run's <c>train.seed</c>.</param>
/// <param name="Scores">Metric key (<see cref="RecipeSummary.Metrics"/>) → value in [0, 1].</param>
/// <param name="Seconds">Wall-clock time of the run, evaluation included (NaN: not known, a reused run).</param>
public sealed record RecipeRun(string Recipe, int Seed, IReadOnlyDictionary<string, double> Scores, double Seconds)
{
    /// <summary>The scores of <c>metrics.json</c> at <paramref name="path"/>.</summary>
    /// <exception cref="InvalidDataException">The file lacks one of <see cref="RecipeSummary.Metrics"/>.</exception>
    public static RecipeRun FromMetricsJson(string recipe, int seed, string path, double seconds)
    {
        var json = JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                   ?? throw new InvalidDataException($"{path}: expected a JSON object");
        var scores = new Dictionary<string, double>();
        foreach (var (key, _) in RecipeSummary.Metrics)
            scores[key] = json[key]?.GetValue<double>() ?? throw new InvalidDataException($"{path}: no '{key}' field");
        return new RecipeRun(recipe, seed, scores, seconds);
    }
}

/// <summary>Mean and sample standard deviation of one metric over one recipe's seeds.</summary>
/// <param name="Mean">Arithmetic mean.</param>
/// <param name="Std">Sample standard deviation (n − 1 in the denominator, as numpy's <c>std(ddof=1)</c>); 0 for one run.</param>
/// <param name="Count">Runs (seeds) behind the figures.</param>
public readonly record struct MeanStd(double Mean, double Std, int Count)
{
    /// <summary>Mean and sample standard deviation of <paramref name="values"/> (at least one).</summary>
    public static MeanStd Of(IReadOnlyList<double> values)
    {
        if (values.Count == 0) throw new ArgumentException("no values to summarise", nameof(values));
        var mean = values.Average();
        var std = values.Count > 1 ? Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1)) : 0;
        return new MeanStd(mean, std, values.Count);
    }

    /// <summary>"0.637 ± 0.004".</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Mean:F3} ± {Std:F3}");
}

/// <summary>
/// The comparison table of <c>Seg.Bench recipes</c>: per recipe, mean ± standard deviation over seeds of mIoU^D,
/// mIoU^I, mIoU^C and mIoU^I_10, and each recipe's difference from the first (the baseline). A difference counts
/// as a finding only where it exceeds the spread: |Δ mean| greater than the sum of the two standard deviations
/// (the mean ± std bars do not overlap). Because run s of every recipe starts from the same weights and sees the
/// same batches (same <c>train.seed</c>), the table also gives the differences paired by seed: mean ± std over
/// seeds of (recipe − baseline), beyond its spread where |mean| &gt; std.
/// </summary>
public sealed class RecipeSummary
{
    /// <summary>The metrics.json keys compared, with their names in the table.</summary>
    public static readonly IReadOnlyList<(string Key, string Label)> Metrics =
    [
        ("mIoU", "mIoU^D"), ("mIoU_I", "mIoU^I"), ("mIoU_C", "mIoU^C"), ("mIoU_I_worst10", "mIoU^I_10"),
    ];

    /// <summary>One recipe's line of the table.</summary>
    public sealed record Row(string Recipe, string Description, IReadOnlyList<RecipeRun> Runs, IReadOnlyDictionary<string, MeanStd> Stats);

    /// <summary>Recipes in the order given (the first is the baseline); recipes without a finished run are left out.</summary>
    public IReadOnlyList<Row> Rows { get; }

    /// <summary>Groups <paramref name="runs"/> by recipe, in the order of <paramref name="recipes"/> (name, description).</summary>
    public RecipeSummary(IReadOnlyList<(string Name, string Description)> recipes, IReadOnlyList<RecipeRun> runs)
    {
        var rows = new List<Row>();
        foreach (var (name, description) in recipes)
        {
            var mine = runs.Where(r => r.Recipe == name).OrderBy(r => r.Seed).ToList();
            if (mine.Count == 0) continue;
            var stats = Metrics.ToDictionary(m => m.Key, m => MeanStd.Of(mine.Select(r => r.Scores[m.Key]).ToList()));
            rows.Add(new Row(name, description, mine, stats));
        }
        Rows = rows;
    }

    /// <summary>True where the difference of two means exceeds the spread: |a.Mean − b.Mean| &gt; a.Std + b.Std.</summary>
    public static bool BeyondSpread(MeanStd a, MeanStd b) => Math.Abs(a.Mean - b.Mean) > a.Std + b.Std;

    /// <summary>
    /// Per seed that both recipes ran, <paramref name="recipe"/>'s score minus <paramref name="baseline"/>'s on
    /// <paramref name="metric"/>, summarised; null when they share no seed.
    /// </summary>
    public static MeanStd? PairedDifference(Row recipe, Row baseline, string metric)
    {
        var differences = recipe.Runs.Join(baseline.Runs, r => r.Seed, b => b.Seed, (r, b) => r.Scores[metric] - b.Scores[metric]).ToList();
        return differences.Count > 0 ? MeanStd.Of(differences) : null;
    }

    /// <summary>True where a paired difference exceeds its own spread: |mean| &gt; std (and more than one seed).</summary>
    public static bool BeyondSpread(MeanStd paired) => paired.Count > 1 && Math.Abs(paired.Mean) > paired.Std;

    /// <summary>The Markdown table, then the differences from the baseline (the first row).</summary>
    public string ToMarkdown()
    {
        var s = new StringBuilder();
        Header(s, "| recipe | loss | runs |", "|---|---|---:|", "");
        foreach (var row in Rows)
        {
            s.Append($"| `{row.Recipe}` | {row.Description} | {row.Runs.Count} |");
            foreach (var (key, _) in Metrics) s.Append($" {row.Stats[key]} |");
            s.AppendLine();
        }
        if (Rows.Count < 2) return s.ToString();
        var baseline = Rows[0];
        s.AppendLine();
        s.AppendLine($"Difference of means from `{baseline.Recipe}` (**bold**: beyond the spread, |Δ| > std + std of the two recipes):");
        s.AppendLine();
        Header(s, "| recipe |", "|---|", "Δ ");
        foreach (var row in Rows.Skip(1))
        {
            s.Append($"| `{row.Recipe}` |");
            foreach (var (key, _) in Metrics)
            {
                var (a, b) = (row.Stats[key], baseline.Stats[key]);
                var delta = (a.Mean - b.Mean).ToString("+0.000;-0.000;0.000", CultureInfo.InvariantCulture);
                s.Append(BeyondSpread(a, b) ? $" **{delta}** |" : $" {delta} |");
            }
            s.AppendLine();
        }
        s.AppendLine();
        s.AppendLine($"Differences from `{baseline.Recipe}` paired by seed (same initial weights and batches): mean ± std over seeds of recipe − baseline, " +
                     "and at how many seeds the recipe was ahead (**bold**: |mean| > std):");
        s.AppendLine();
        Header(s, "| recipe |", "|---|", "Δ ");
        foreach (var row in Rows.Skip(1))
        {
            s.Append($"| `{row.Recipe}` |");
            foreach (var (key, _) in Metrics)
            {
                if (PairedDifference(row, baseline, key) is not { } d) { s.Append(" – |"); continue; }
                var ahead = row.Runs.Join(baseline.Runs, r => r.Seed, b => b.Seed, (r, b) => r.Scores[key] > b.Scores[key]).Count(x => x);
                var text = string.Create(CultureInfo.InvariantCulture, $"{d.Mean:+0.000;-0.000;0.000} ± {d.Std:F3}");
                s.Append(BeyondSpread(d) ? $" **{text}** ({ahead}/{d.Count}) |" : $" {text} ({ahead}/{d.Count}) |");
            }
            s.AppendLine();
        }
        return s.ToString();
    }

    /// <summary>A table's header: the leading columns, then one right-aligned column per metric.</summary>
    static void Header(StringBuilder s, string first, string firstRule, string prefix)
    {
        s.Append(first);
        foreach (var (_, label) in Metrics) s.Append($" {prefix}{label} |");
        s.AppendLine();
        s.Append(firstRule).Append(string.Concat(Enumerable.Repeat("---:|", Metrics.Count))).AppendLine();
    }

    /// <summary>CSV, one line per recipe and metric: <c>recipe,metric,mean,std,n,values</c> (values: per seed, ';'-separated).</summary>
    public string ToCsv()
    {
        var s = new StringBuilder("recipe,metric,mean,std,n,values\n");
        foreach (var row in Rows)
            foreach (var (key, _) in Metrics)
            {
                var st = row.Stats[key];
                var values = string.Join(';', row.Runs.Select(r => F(r.Scores[key])));
                s.Append($"{row.Recipe},{key},{F(st.Mean)},{F(st.Std)},{st.Count},{values}\n");
            }
        return s.ToString();
    }

    /// <summary>JSON: <c>{"recipes": [{"name", "description", "runs": [{"seed", "seconds", METRIC...}], "mean": {...}, "std": {...}}]}</c>.</summary>
    public string ToJson()
    {
        var recipes = new JsonArray();
        foreach (var row in Rows)
        {
            var runs = new JsonArray();
            foreach (var r in row.Runs)
            {
                var o = new JsonObject { ["seed"] = r.Seed, ["seconds"] = double.IsNaN(r.Seconds) ? null : Math.Round(r.Seconds, 1) };
                foreach (var (key, _) in Metrics) o[key] = r.Scores[key];
                runs.Add(o);
            }
            var mean = new JsonObject();
            var std = new JsonObject();
            foreach (var (key, _) in Metrics) (mean[key], std[key]) = (row.Stats[key].Mean, row.Stats[key].Std);
            recipes.Add(new JsonObject { ["name"] = row.Recipe, ["description"] = row.Description, ["runs"] = runs, ["mean"] = mean, ["std"] = std });
        }
        return new JsonObject { ["recipes"] = recipes }.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    static string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);
}
