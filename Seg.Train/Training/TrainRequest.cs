namespace Seg.Train.Training;

/// <summary>What <c>train</c> was asked to do.</summary>
/// <param name="ConfigYaml">The config text (file contents or the embedded default).</param>
/// <param name="Source">Where the text came from, for messages.</param>
/// <param name="Overrides"><c>--set</c> assignments.</param>
/// <param name="Output">Run directory; null: <c>runs/NAME</c>.</param>
/// <param name="Resume">Continue from <c>DIR/checkpoints/last.ckpt</c>.</param>
/// <param name="Restart">Start the Seg run in <c>DIR</c> over (<see cref="RunStart.Restart"/>); without it, and
/// without <paramref name="Resume"/>, a folder that holds a run is refused.</param>
public sealed record TrainRequest(string ConfigYaml, string Source, IReadOnlyList<string> Overrides, string? Output, bool Resume, bool Restart = false)
{
    /// <summary>How the run folder is to be used.</summary>
    /// <exception cref="ArgumentException">Both <see cref="Resume"/> and <see cref="Restart"/>.</exception>
    public RunStart Start => (Resume, Restart) switch
    {
        (true, true) => throw new ArgumentException("--resume and --restart exclude each other: --resume continues the run in the folder, --restart starts it over."),
        (true, false) => RunStart.Resume,
        (false, true) => RunStart.Restart,
        _ => RunStart.Fresh,
    };
}

/// <summary>How a training session ended.</summary>
public enum TrainStatus
{
    /// <summary>All iterations done; reports written.</summary>
    Completed,
    /// <summary>Stopped by Ctrl+C after saving <c>last.ckpt</c>.</summary>
    Interrupted,
}

/// <summary>The result of <see cref="Trainer.Run"/>.</summary>
public sealed record TrainOutcome(TrainStatus Status, long Iteration, RunPaths Paths, double? MeanIoU);
