namespace Seg.Train.Training;

/// <summary>The run directory contract: where every artefact of a run lives.</summary>
public sealed record RunPaths(string Root)
{
    /// <summary><c>DIR/checkpoints</c>.</summary>
    public string Checkpoints => Path.Combine(Root, "checkpoints");
    /// <summary><c>DIR/checkpoints/last.ckpt</c>: the latest state, for <c>--resume</c>.</summary>
    public string Last => Path.Combine(Checkpoints, "last.ckpt");
    /// <summary><c>DIR/checkpoints/best.ckpt</c>: the state with the best validation mIoU.</summary>
    public string Best => Path.Combine(Checkpoints, "best.ckpt");
    /// <summary><c>DIR/train_log.csv</c>.</summary>
    public string TrainLog => Path.Combine(Root, "train_log.csv");
    /// <summary><c>DIR/eval_log.csv</c>: validation scores at each evaluation.</summary>
    public string EvalLog => Path.Combine(Root, "eval_log.csv");
    /// <summary><c>DIR/metrics.json</c>.</summary>
    public string Metrics => Path.Combine(Root, "metrics.json");
    /// <summary><c>DIR/report.md</c>.</summary>
    public string ReportMarkdown => Path.Combine(Root, "report.md");
    /// <summary><c>DIR/report.html</c> (self-contained).</summary>
    public string ReportHtml => Path.Combine(Root, "report.html");
    /// <summary><c>DIR/plots</c>: the report's PNGs.</summary>
    public string Plots => Path.Combine(Root, "plots");
    /// <summary><c>DIR/tensorboard</c>: TensorBoard event files.</summary>
    public string TensorBoard => Path.Combine(Root, "tensorboard");
    /// <summary><c>DIR/config.yaml</c>: the effective config text.</summary>
    public string Config => Path.Combine(Root, "config.yaml");

    /// <summary>The report's PNGs in <c>DIR/plots</c>: the only files a restart removes there.</summary>
    public static readonly IReadOnlyList<string> PlotNames = ["loss.png", "miou.png", "class_iou.png", "image_iou.png", "confusion.png", "samples.png"];

    /// <summary>The names of TensorBoard's event files in <c>DIR/tensorboard</c>: the only files a restart removes there.</summary>
    public const string TensorBoardEventPattern = "events.out.tfevents.*";
}
