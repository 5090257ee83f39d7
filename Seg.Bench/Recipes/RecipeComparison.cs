using System.Diagnostics;
using System.Globalization;
using Seg.Train.Training;

namespace Seg.Bench.Recipes;

/// <summary>The options of <c>Seg.Bench recipes</c>.</summary>
public sealed record RecipeOptions
{
    /// <summary>Folder of recipe configs (<c>*.yaml</c>), run in file-name order; the first is the baseline.</summary>
    public string Recipes { get; init; } = Path.Combine("configs", "recipes");
    /// <summary>Seeds 0 … Seeds − 1 per recipe.</summary>
    public int Seeds { get; init; } = 3;
    /// <summary>Folder of the runs (<c>OUT/RECIPE/seedS</c>) and of the summary files.</summary>
    public string Output { get; init; } = Path.Combine("runs", "recipes");
    /// <summary>Overrides every recipe's <c>train.iterations</c> (null: the recipes' own).</summary>
    public int? Iterations { get; init; }
    /// <summary>Overrides every recipe's <c>train.threads</c> (null: the recipes' own).</summary>
    public int? Threads { get; init; }
    /// <summary>Run only these recipes (null: all).</summary>
    public IReadOnlyList<string>? Only { get; init; }
    /// <summary>Keep a run whose <c>metrics.json</c> already exists instead of training it again.</summary>
    public bool Reuse { get; init; }

    /// <summary>The usage line.</summary>
    public const string Usage = "usage: recipes [--recipes DIR] [--seeds N] [--output DIR] [--iterations N] [--threads N] [--only NAME[,NAME...]] [--reuse]";

    /// <summary>Parses the verb's arguments.</summary>
    /// <exception cref="ArgumentException">An unknown option, a missing or malformed value (named in the message).</exception>
    public static RecipeOptions Parse(IReadOnlyList<string> args)
    {
        var o = new RecipeOptions();
        for (var i = 0; i < args.Count; i++)
        {
            string Value() => i + 1 < args.Count && !args[i + 1].StartsWith("--", StringComparison.Ordinal)
                ? args[++i] : throw new ArgumentException($"{args[i]} needs a value; {Usage}");
            int Positive()
            {
                var name = args[i];
                var text = Value();
                return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n > 0
                    ? n : throw new ArgumentException($"{name}: expected a positive integer, got '{text}'");
            }
            o = args[i] switch
            {
                "--recipes" => o with { Recipes = Value() },
                "--seeds" => o with { Seeds = Positive() },
                "--output" => o with { Output = Value() },
                "--iterations" => o with { Iterations = Positive() },
                "--threads" => o with { Threads = Positive() },
                "--only" => o with { Only = Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) },
                "--reuse" => o with { Reuse = true },
                _ => throw new ArgumentException($"unknown argument '{args[i]}'; {Usage}"),
            };
        }
        return o;
    }
}

/// <summary>
/// <c>Seg.Bench recipes</c>: trains every recipe (a config file) under several seeds on the same budget, in process
/// with <see cref="Trainer"/> (each run a normal run folder with metrics.json and report), and writes the comparison:
/// <c>summary.md</c>, <c>summary.csv</c>, <c>summary.json</c> (<see cref="RecipeSummary"/>), <c>runs.csv</c> (one line
/// per run) and <c>summary.png</c> (<see cref="RecipePlot"/>). Run s gets <c>train.seed=s</c>: weights, data order and
/// augmentation change; the scenes are those of the recipe's <c>data.seed</c>. The summary is rewritten after every
/// run, so an interrupted comparison keeps what it finished (rerun with <c>--reuse</c> to go on).
/// </summary>
public static class RecipeComparison
{
    /// <summary>A recipe file: its name (file name without extension), first comment line and text.</summary>
    public sealed record Recipe(string Name, string Description, string Path, string Yaml);

    /// <summary>Runs the verb; returns the process exit code (0: every run finished).</summary>
    public static int Run(IReadOnlyList<string> args, TextWriter? log = null)
    {
        log ??= Console.Out;
        var o = RecipeOptions.Parse(args);
        var recipes = LoadRecipes(o);
        Directory.CreateDirectory(o.Output);
        var total = recipes.Count * o.Seeds;
        log.WriteLine($"recipes: {recipes.Count} recipes × {o.Seeds} seeds = {total} runs -> {System.IO.Path.GetFullPath(o.Output)}");
        log.WriteLine($"  {string.Join(", ", recipes.Select(r => r.Name))}" +
                      (o.Iterations is { } it ? $"; train.iterations={it}" : "") + (o.Threads is { } th ? $"; train.threads={th}" : ""));

        var earlier = ReadSeconds(System.IO.Path.Combine(o.Output, "runs.csv"));
        var runs = new List<RecipeRun>();
        var failed = new List<string>();
        var trained = new List<double>();
        var watch = Stopwatch.StartNew();
        var index = 0;
        // Seed-major order: every recipe has its first seed before any gets a second, so an interrupted
        // comparison still covers all recipes.
        for (var seed = 0; seed < o.Seeds; seed++)
            foreach (var recipe in recipes)
            {
                index++;
                var dir = System.IO.Path.Combine(o.Output, recipe.Name, $"seed{seed}");
                var metrics = new RunPaths(dir).Metrics;
                if (o.Reuse && File.Exists(metrics))
                {
                    log.WriteLine($"[{index}/{total}] {recipe.Name} seed {seed}: reusing {metrics}");
                    runs.Add(RecipeRun.FromMetricsJson(recipe.Name, seed, metrics, earlier.GetValueOrDefault((recipe.Name, seed), double.NaN)));
                    continue;
                }
                var eta = trained.Count > 0 ? TimeSpan.FromSeconds(trained.Average() * (total - index + 1)).ToString(@"hh\:mm\:ss", CultureInfo.InvariantCulture) : "after the first run";
                log.WriteLine($"[{index}/{total}] {recipe.Name} seed {seed} (elapsed {watch.Elapsed:hh\\:mm\\:ss}, ETA {eta})");
                var overrides = new List<string> { $"train.seed={seed}" };
                if (o.Iterations is { } iterations) overrides.Add($"train.iterations={iterations}");
                if (o.Threads is { } threads) overrides.Add($"train.threads={threads}");
                var runWatch = Stopwatch.StartNew();
                try
                {
                    // A run left unfinished (or finished, without --reuse) is trained again from the start.
                    Trainer.Run(new TrainRequest(recipe.Yaml, recipe.Path, overrides, dir, Resume: false, Restart: true));
                }
                catch (TrainingDivergedException e)
                {
                    log.WriteLine($"[{index}/{total}] {recipe.Name} seed {seed} diverged, left out of the table: {e.Message}");
                    failed.Add($"{recipe.Name} seed {seed}");
                    continue;
                }
                trained.Add(runWatch.Elapsed.TotalSeconds);
                var run = RecipeRun.FromMetricsJson(recipe.Name, seed, metrics, runWatch.Elapsed.TotalSeconds);
                runs.Add(run);
                log.WriteLine($"[{index}/{total}] {recipe.Name} seed {seed}: " +
                              string.Join(", ", RecipeSummary.Metrics.Select(m => $"{m.Label} {run.Scores[m.Key]:F3}")) + $" in {run.Seconds:F0} s");
                Write(o.Output, recipes, runs);
            }

        var summary = Write(o.Output, recipes, runs);
        log.WriteLine();
        log.Write(summary.ToMarkdown());
        log.WriteLine($"\n{runs.Count} runs in {watch.Elapsed:hh\\:mm\\:ss}; wrote {System.IO.Path.Combine(o.Output, "summary.md")} (.csv, .json, .png) and runs.csv");
        if (failed.Count > 0) log.WriteLine($"diverged (not in the table): {string.Join(", ", failed)}");
        return failed.Count == 0 ? 0 : 1;
    }

    /// <summary>The recipe files of <see cref="RecipeOptions.Recipes"/> in name order (only those of <see cref="RecipeOptions.Only"/>, if set).</summary>
    /// <exception cref="ArgumentException">The folder is missing or has no recipe, or <c>--only</c> names none of them.</exception>
    public static IReadOnlyList<Recipe> LoadRecipes(RecipeOptions o)
    {
        if (!Directory.Exists(o.Recipes))
            throw new ArgumentException($"--recipes: folder '{o.Recipes}' does not exist (run from the repository root, or pass --recipes DIR)");
        var all = Directory.GetFiles(o.Recipes, "*.yaml").Order(StringComparer.Ordinal).Select(path =>
        {
            var yaml = File.ReadAllText(path);
            var comment = yaml.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith('#'));
            var description = comment?.TrimStart('#').Trim() ?? "";
            return new Recipe(System.IO.Path.GetFileNameWithoutExtension(path), description, path, yaml);
        }).ToList();
        if (all.Count == 0) throw new ArgumentException($"--recipes: no *.yaml file in '{o.Recipes}'");
        if (o.Only is null) return all;
        var unknown = o.Only.Where(n => all.All(r => r.Name != n)).ToList();
        if (unknown.Count > 0)
            throw new ArgumentException($"--only: no recipe named {string.Join(", ", unknown.Select(n => $"'{n}'"))} in '{o.Recipes}' (recipes: {string.Join(", ", all.Select(r => r.Name))})");
        return all.Where(r => o.Only.Contains(r.Name)).ToList();
    }

    /// <summary>Run times recorded in an earlier <c>runs.csv</c>, so that <c>--reuse</c> keeps them.</summary>
    static Dictionary<(string, int), double> ReadSeconds(string path)
    {
        var seconds = new Dictionary<(string, int), double>();
        if (!File.Exists(path)) return seconds;
        foreach (var line in File.ReadLines(path).Skip(1))
        {
            var f = line.Split(',');
            if (f.Length > 2 && int.TryParse(f[1], CultureInfo.InvariantCulture, out var seed)
                && double.TryParse(f[2], NumberStyles.Float, CultureInfo.InvariantCulture, out var s))
                seconds[(f[0], seed)] = s;
        }
        return seconds;
    }

    static RecipeSummary Write(string output, IReadOnlyList<Recipe> recipes, IReadOnlyList<RecipeRun> runs)
    {
        var summary = new RecipeSummary(recipes.Select(r => (r.Name, r.Description)).ToList(), runs);
        File.WriteAllText(System.IO.Path.Combine(output, "summary.md"), summary.ToMarkdown());
        File.WriteAllText(System.IO.Path.Combine(output, "summary.csv"), summary.ToCsv());
        File.WriteAllText(System.IO.Path.Combine(output, "summary.json"), summary.ToJson());
        File.WriteAllLines(System.IO.Path.Combine(output, "runs.csv"),
            runs.Select(r => string.Join(',', new[] { r.Recipe, r.Seed.ToString(CultureInfo.InvariantCulture), r.Seconds.ToString("F1", CultureInfo.InvariantCulture) }
                .Concat(RecipeSummary.Metrics.Select(m => r.Scores[m.Key].ToString("R", CultureInfo.InvariantCulture)))))
                .Prepend("recipe,seed,seconds," + string.Join(',', RecipeSummary.Metrics.Select(m => m.Key))));
        RecipePlot.Save(System.IO.Path.Combine(output, "summary.png"), summary);
        return summary;
    }
}
