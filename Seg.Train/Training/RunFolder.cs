using Seg.Core.IO;
using Seg.Platform.IO;

namespace Seg.Train.Training;

/// <summary>How <c>train</c> treats the run folder it is given.</summary>
public enum RunStart
{
    /// <summary>A new run: the folder must be new, empty, or hold nothing but a lock left by a killed run.</summary>
    Fresh,
    /// <summary><c>--resume</c>: continue the Seg run in the folder from <c>checkpoints/last.ckpt</c>.</summary>
    Resume,
    /// <summary><c>--restart</c>: start the Seg run in the folder over. Its reports, logs, plots and TensorBoard
    /// events are removed at the start; its checkpoints are kept until the new run has saved its first one.</summary>
    Restart,
}

/// <summary>
/// The run folder's guard: everything <c>train</c> creates, checks, writes or removes in <c>DIR</c> goes through it.
/// Its promises: nothing outside the folder changes (every file is written through <see cref="AtomicFile"/>, never
/// through a link; the folder's subfolders must be real folders); nothing Seg did not create is deleted (a non-empty
/// folder that is not a Seg run is refused, and a restart removes only the files of the run contract,
/// <see cref="RunPaths"/>, by name); a finished or interrupted run is never started over by accident.
/// </summary>
/// <remarks>A folder is a Seg run when its <c>config.yaml</c> starts with the line Seg writes there
/// (<see cref="ConfigHeader"/>).</remarks>
public sealed class RunFolder : IDisposable
{
    /// <summary>The first line of every <c>config.yaml</c> that <c>train</c> writes; what marks a folder as a Seg run.</summary>
    public const string ConfigHeader = "# source: ";

    /// <summary>The names <c>train</c> and <c>eval</c> create directly in the run folder.</summary>
    public static readonly IReadOnlyList<string> ContractNames =
        [RunLock.FileName, "config.yaml", "checkpoints", "train_log.csv", "eval_log.csv", "metrics.json", "report.md", "report.html", "plots", "tensorboard", "eval"];

    static readonly string[] ContractFolders = ["checkpoints", "plots", "tensorboard", "eval"];

    readonly RunLock runLock;
    List<string> staleCheckpoints;

    RunFolder(RunPaths paths, RunLock runLock, List<string> staleCheckpoints)
    {
        Paths = paths;
        this.runLock = runLock;
        this.staleCheckpoints = staleCheckpoints;
    }

    /// <summary>Where the artefacts go.</summary>
    public RunPaths Paths { get; }

    /// <summary>The run folder for <c>--output</c> (null: <c>runs/NAME</c>), as an absolute path, so that a path such
    /// as <c>a/missing/../run</c> means the same folder to every later file operation.</summary>
    /// <exception cref="ArgumentException">An empty <c>--output</c>.</exception>
    public static RunPaths Locate(string? output, string name)
    {
        if (output is not null && string.IsNullOrWhiteSpace(output))
            throw new ArgumentException($"--output '{output}' names no folder; give a folder path, or leave --output out for runs/{name}.");
        return new RunPaths(Path.GetFullPath(output ?? Path.Combine("runs", name)));
    }

    /// <summary>
    /// Refuses, before anything is built or written, a folder that <paramref name="start"/> may not use: one that
    /// is not a folder, a non-empty folder that is not a Seg run, a Seg run without <c>--resume</c> or
    /// <c>--restart</c>, a resume without <c>last.ckpt</c>, and a run folder whose parts are links or of the wrong kind.
    /// </summary>
    /// <exception cref="IOException">The folder cannot be used; the message says why and what to do.</exception>
    /// <exception cref="FileNotFoundException"><c>--resume</c> without <c>checkpoints/last.ckpt</c>.</exception>
    public static void Check(RunPaths paths, RunStart start)
    {
        if (FileChecks.KindOf(paths.Root) == PathKind.Directory) RunLock.ThrowIfHeld(paths.Root);   // "in use" says more than anything below
        Inspect(paths, start);
    }

    // Check, less the lock: what Open repeats once it holds the lock.
    static void Inspect(RunPaths paths, RunStart start)
    {
        var root = paths.Root;
        var kind = FileChecks.KindOf(root);
        if (kind != PathKind.Missing && kind != PathKind.Directory)
            throw new IOException($"the run folder {root} is {FileChecks.Describe(kind)}, not a folder; choose another --output.");
        var foreign = kind == PathKind.Missing ? [] : Directory.EnumerateFileSystemEntries(root).Select(Path.GetFileName)
            .Where(n => n != RunLock.FileName && !IsTemporary(n!)).Order(StringComparer.Ordinal).ToList();
        var isRun = IsSegRun(paths);
        if (foreign.Count > 0 && !isRun)
            throw new IOException($"{root} is not empty and is not a Seg run folder (it has no config.yaml written by Seg; it holds " +
                                  $"{string.Join(", ", foreign.Take(3).Select(n => $"'{n}'"))}{(foreign.Count > 3 ? $" and {foreign.Count - 3} more" : "")}). " +
                                  "Seg trains only into a new or empty folder, or into one of its own runs, so that it never overwrites or deletes " +
                                  "files it did not write: choose another --output.");
        if (isRun) CheckParts(paths);
        switch (start)
        {
            case RunStart.Fresh when foreign.Count > 0:
                throw new IOException($"{root} holds a Seg run ({Describe(paths)}): continue it with --resume, or start it over with --restart " +
                                      "(its checkpoints are kept until the new run has saved its own), or train into another --output.");
            case RunStart.Resume when FileChecks.KindOf(paths.Last, followLinks: false) != PathKind.File:
                throw new FileNotFoundException($"--resume: no checkpoint at {paths.Last}; train without --resume to start the run", paths.Last);
        }
    }

    /// <summary>
    /// Takes the folder for this process (<see cref="RunLock"/>), checks it again under the lock, removes what a
    /// killed write left half-written and, for <see cref="RunStart.Restart"/>, the old run's reports, logs, plots and
    /// TensorBoard events. <paramref name="note"/> hears about each removal.
    /// </summary>
    public static RunFolder Open(RunPaths paths, RunStart start, Action<string> note)
    {
        Check(paths, start);
        Directory.CreateDirectory(paths.Root);
        var runLock = RunLock.Acquire(paths.Root, note);
        try
        {
            Inspect(paths, start);   // again, now that no other run can change it
            foreach (var name in AtomicFile.RemoveTemporaries(paths.Checkpoints, "*.ckpt"))
                note($"note: removed {name}, a checkpoint that a crashed or killed save left half-written");
            foreach (var name in ContractNames.Where(n => !ContractFolders.Contains(n)).SelectMany(n => AtomicFile.RemoveTemporaries(paths.Root, n))
                         .Concat(PlotTemporaries(paths)))
                note($"note: removed {name}, a file that a killed write left half-written");
            var stale = new List<string>();
            if (start == RunStart.Restart && IsSegRun(paths))
            {
                note($"note: --restart: starting {paths.Root} over; its checkpoints stay until the new run saves its own");
                RemoveOldRun(paths);
                stale.AddRange(new[] { paths.Last, paths.Best }.Where(p => FileChecks.KindOf(p, followLinks: false) == PathKind.File));
            }
            return new RunFolder(paths, runLock, stale);
        }
        catch
        {
            runLock.Dispose();
            throw;
        }
    }

    /// <summary>
    /// <c>eval</c>'s check of its output folder, before anything is evaluated: the files it writes there
    /// (<c>metrics.json</c>, the reports, the plots) must be absent, or regular files beside a <c>metrics.json</c> that
    /// Seg wrote, so that an <c>--output</c> pointed at a folder of other work replaces nothing of it.
    /// </summary>
    /// <exception cref="IOException">The folder is not a folder, holds a link or device where a report goes, or holds
    /// report files that are not Seg's.</exception>
    public static void CheckEvalOutput(RunPaths paths)
    {
        var kind = FileChecks.KindOf(paths.Root);
        if (kind == PathKind.Missing) return;
        if (kind != PathKind.Directory)
            throw new IOException($"eval --output {paths.Root} is {FileChecks.Describe(kind)}, not a folder; choose another --output.");
        var targets = new[] { paths.Metrics, paths.ReportMarkdown, paths.ReportHtml }.Concat(PlotFiles(paths)).ToList();
        RequireFileSlots(targets, "eval writes a regular file: remove it or choose another --output.");
        var present = targets.Where(File.Exists).ToList();
        if (present.Count > 0 && !IsSegMetrics(paths.Metrics))
            throw new IOException($"eval --output {paths.Root} holds {Path.GetFileName(present[0])}, and no metrics.json written by Seg beside it: " +
                                  "eval would replace files it did not write; choose another --output.");
    }

    // metrics.json as Seg writes it (MetricsJson): an object with "mIoU" and "classes".
    static bool IsSegMetrics(string path)
    {
        if (FileChecks.KindOf(path, followLinks: false) != PathKind.File || new FileInfo(path).Length > 64 << 20) return false;
        try
        {
            return System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path)) is System.Text.Json.Nodes.JsonObject o
                   && o.ContainsKey("mIoU") && o.ContainsKey("classes");
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Writes <c>config.yaml</c> (which must start with <see cref="ConfigHeader"/>).</summary>
    public void WriteConfig(string text)
    {
        if (!text.StartsWith(ConfigHeader, StringComparison.Ordinal)) throw new ArgumentException($"config.yaml must start with '{ConfigHeader}'", nameof(text));
        AtomicFile.WriteAllText(Paths.Config, text);
    }

    /// <summary>Call after each checkpoint save: after the first save of a restarted run, the old run's other
    /// checkpoint is removed, so that <c>best.ckpt</c> and <c>last.ckpt</c> never come from two runs.</summary>
    public void CheckpointSaved(string path)
    {
        if (staleCheckpoints.Count == 0) return;
        foreach (var old in staleCheckpoints.Where(p => p != path && FileChecks.KindOf(p, followLinks: false) == PathKind.File))
            File.Delete(old);
        staleCheckpoints = [];
    }

    /// <summary>Releases the folder (deletes <c>run.lock</c>).</summary>
    public void Dispose() => runLock.Dispose();

    /// <summary>Whether <paramref name="paths"/>' root holds a Seg run: a <c>config.yaml</c> (a regular file, not a
    /// link) that starts with <see cref="ConfigHeader"/>.</summary>
    public static bool IsSegRun(RunPaths paths)
    {
        if (FileChecks.KindOf(paths.Config, followLinks: false) != PathKind.File) return false;
        try
        {
            using var reader = new StreamReader(paths.Config);
            var buffer = new char[ConfigHeader.Length];
            return reader.ReadBlock(buffer) == buffer.Length && new string(buffer) == ConfigHeader;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    // A Seg run's parts must be what Seg made: folders that are folders, files that are regular files, no links
    // (a planted link would send a write, or a restart's removal, out of the run folder).
    static void CheckParts(RunPaths paths)
    {
        foreach (var name in ContractNames)
        {
            var path = Path.Combine(paths.Root, name);
            var kind = FileChecks.KindOf(path, followLinks: false);
            var expected = ContractFolders.Contains(name) ? PathKind.Directory : PathKind.File;
            if (kind != PathKind.Missing && kind != expected)
                throw new IOException($"{path} is {FileChecks.Describe(kind)}, where a Seg run has {FileChecks.Describe(expected)}; " +
                                      "Seg does not write through links or into what it did not make: remove it, or train into another --output.");
        }
        RequireFileSlots(new[] { paths.Last, paths.Best }.Concat(PlotFiles(paths)),
            "a Seg run has a regular file: remove it, or train into another --output.");
    }

    // Each file Seg is about to write must be absent or a regular file: not a link, folder or device. The message is
    // "FILE is KIND, where " + what follows.
    static void RequireFileSlots(IEnumerable<string> files, string where)
    {
        foreach (var file in files)
        {
            var kind = FileChecks.KindOf(file, followLinks: false);
            if (kind is not (PathKind.Missing or PathKind.File))
                throw new IOException($"{file} is {FileChecks.Describe(kind)}, where {where}");
        }
    }

    // The old run's artefacts other than its checkpoints, by name only: anything else in the folder stays.
    static void RemoveOldRun(RunPaths paths)
    {
        var files = new[] { paths.TrainLog, paths.EvalLog, paths.Metrics, paths.ReportMarkdown, paths.ReportHtml }.Concat(PlotFiles(paths));
        if (FileChecks.KindOf(paths.TensorBoard, followLinks: false) == PathKind.Directory)
            files = files.Concat(Directory.EnumerateFiles(paths.TensorBoard, RunPaths.TensorBoardEventPattern));
        foreach (var file in files)
            if (FileChecks.KindOf(file, followLinks: false) == PathKind.File) File.Delete(file);
    }

    static IEnumerable<string> PlotFiles(RunPaths paths) => RunPaths.PlotNames.Select(n => Path.Combine(paths.Plots, n));

    static IEnumerable<string> PlotTemporaries(RunPaths paths) =>
        RunPaths.PlotNames.SelectMany(n => AtomicFile.RemoveTemporaries(paths.Plots, n)).ToList();

    static bool IsTemporary(string name) => name.StartsWith('.') && name.EndsWith(AtomicFile.TempSuffix, StringComparison.Ordinal) &&
                                            ContractNames.Any(n => name.StartsWith($".{n}.", StringComparison.Ordinal));

    static string Describe(RunPaths paths)
    {
        if (FileChecks.KindOf(paths.Last, followLinks: false) != PathKind.File) return "no checkpoint yet";
        return Checkpoints.CheckpointFile.CanResumeFrom(paths.Last, out var state, out _)
            ? $"its last checkpoint is at iteration {state!.Iteration}"
            : "its last.ckpt cannot be resumed from";
    }
}
