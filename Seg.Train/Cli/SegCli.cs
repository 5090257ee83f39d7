using System.CommandLine;
using System.Runtime.InteropServices;
using Seg.Core;
using Seg.Core.Distributed;
using Seg.Data;
using Seg.Models.Export;
using Seg.Train.Config;
using Seg.Train.Distributed;
using Seg.Train.Evaluation;
using Seg.Train.Export;
using Seg.Train.Prediction;
using Seg.Train.Training;
using Seg.Platform.Native;

namespace Seg.Train.Cli;

/// <summary>
/// The command line: <c>train</c> (also what no verb does, on the embedded default config), <c>eval</c>,
/// <c>predict</c> and <c>export</c>. Exit codes: 0 success, 1 failure (one-line reason on stderr), 2 bad config, 3 diverged
/// training, 130 interrupted by Ctrl+C or SIGTERM (after saving <c>last.ckpt</c>).
/// </summary>
public static class SegCli
{
    /// <summary>Exit code of a config error.</summary>
    public const int ConfigError = 2;
    /// <summary>Exit code of a NaN/Inf loss.</summary>
    public const int Diverged = 3;
    /// <summary>Exit code after Ctrl+C or SIGTERM.</summary>
    public const int Interrupted = 130;

    /// <summary>Parses <paramref name="args"/> and runs the verb.</summary>
    public static int Run(string[] args)
    {
        using var interrupt = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            if (interrupt.IsCancellationRequested) return; // a second Ctrl+C terminates at once
            e.Cancel = true;
            interrupt.Cancel();
            Console.Error.WriteLine("interrupt: finishing this step and saving a checkpoint (Ctrl+C again to abort)");
        };
        Console.CancelKeyPress += onCancel;
        // SIGTERM (docker stop, systemd, Slurm) is a request to stop, as Ctrl+C is: finish the step, save, release
        // run.lock, exit 130. A second SIGTERM, like a second Ctrl+C, ends the process at once.
        using var onTerminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
        {
            if (interrupt.IsCancellationRequested) return;
            context.Cancel = true;
            interrupt.Cancel();
            Console.Error.WriteLine("SIGTERM: finishing this step and saving a checkpoint (send it again to abort)");
        });
        try
        {
            return Build(interrupt.Token).Parse(args, Parsing).Invoke(new InvocationConfiguration { ProcessTerminationTimeout = null });
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    /// <summary>
    /// How the command line is parsed: without response files. System.CommandLine expands <c>@FILE</c> by default,
    /// reading the whole file unbounded: <c>train @/dev/zero</c> ended in "Out of memory." and a file that names
    /// itself in "Stack overflow.". Seg's commands are short; a shell script or <c>--config</c> does what a response
    /// file would, so <c>@</c> is an ordinary character here.
    /// </summary>
    public static readonly ParserConfiguration Parsing = new() { ResponseFileTokenReplacer = null };

    /// <summary>The command tree (exposed for tests of parsing and help).</summary>
    public static RootCommand Build(CancellationToken interrupt)
    {
        var config = new Option<string>("--config", "-c") { Description = "YAML config file (train: default is the embedded configs/default.yaml)" };
        var set = new Option<string[]>("--set") { Description = "Override a config key: --set key.path=value (repeatable), e.g. --set train.iterations=100" };
        var output = new Option<string>("--output", "-o") { Description = "Output directory (train: default runs/NAME)" };
        var resume = new Option<bool>("--resume") { Description = "Continue from OUTPUT/checkpoints/last.ckpt" };
        var restart = new Option<bool>("--restart")
        {
            Description = "Start the Seg run in OUTPUT over (without it, train refuses a folder that holds a run); " +
                          "its checkpoints are kept until the new run has saved its own",
        };

        var train = new Command("train", "Train a model from a YAML config") { config, set, output, resume, restart };
        // Under an MPI launcher (mpirun -np N) each process is one rank of a data-parallel job; alone, rank 0 of 1.
        train.SetAction(r => DataParallel.Run(dp => Guard(() => Train(r.GetValue(config), r.GetValue(set) ?? [], r.GetValue(output), r.GetValue(resume), r.GetValue(restart), interrupt, dp)), Interrupted));

        var evalConfig = new Option<string>("--config", "-c") { Description = "YAML config (dataset, model, eval settings); default: the one a .ckpt was trained with" };
        var checkpoint = new Option<string>("--checkpoint") { Description = "Checkpoint (.ckpt) or weight file", Required = true };
        var evalSet = new Option<string[]>("--set") { Description = "Override a config key, e.g. --set eval.flip=true (repeatable)" };
        var evalOutput = new Option<string>("--output", "-o") { Description = "Output directory (default: the run's eval/ folder)" };
        var evalDevice = DeviceOption("default: the config's train.device");
        var eval = new Command("eval", "Evaluate a checkpoint on the validation split (whole-image or sliding-window, optional flip and multi-scale TTA)")
            { evalConfig, checkpoint, evalSet, evalOutput, evalDevice };
        eval.SetAction(r => Guard(() =>
        {
            var (result, paths) = EvalCommand.Run(r.GetValue(evalConfig), r.GetValue(evalSet) ?? [], r.GetValue(checkpoint)!, r.GetValue(evalOutput),
                interrupt, r.GetValue(evalDevice));
            var m = result.Metrics;
            Console.WriteLine($"{Reports.ReportWriter.SummaryText(m)}{Environment.NewLine}report: {Path.GetFullPath(paths.ReportHtml)}");
            if (result.NonFinitePixels > 0)
                Console.Error.WriteLine($"warning: {result.NonFinitePixels} pixel(s) had NaN or infinite output and were scored as their arg-max (eval.allow_nonfinite)");
            return 0;
        }));

        var predictCheckpoint = new Option<string>("--checkpoint") { Description = "Checkpoint (.ckpt) written by train (or give --model)" };
        var predictModel = new Option<string>("--model") { Description = "ONNX file written by export, run with ONNX Runtime (or give --checkpoint)" };
        var input = new Option<string>("--input", "-i") { Description = "An image file or a directory of images", Required = true };
        var predictOutput = new Option<string>("--output", "-o") { Description = "Directory for colour masks and overlays", Required = true };
        var predictSet = new Option<string[]>("--set") { Description = "Override a key of the checkpoint's config, e.g. --set train.precision=fp32 (repeatable)" };
        var predictDevice = DeviceOption("default: auto; --checkpoint only");
        var allowNonFinite = new Option<bool>("--allow-nonfinite")
        {
            Description = "Draw pixels whose model output is NaN or infinite as their arg-max (their count is printed) instead of stopping",
        };
        var predict = new Command("predict", "Predict images with a checkpoint or an exported ONNX model: colour masks in the dataset palette and overlays")
            { predictCheckpoint, predictModel, input, predictOutput, predictSet, predictDevice, allowNonFinite };
        predict.Validators.Add(r =>
        {
            if ((r.GetResult(predictCheckpoint) is null) == (r.GetResult(predictModel) is null))
                r.AddError("predict needs exactly one of --checkpoint (a .ckpt) and --model (an .onnx file).");
        });
        predict.SetAction(r => Guard(() =>
        {
            HeadlessOpenCv.EnsureLoaded();   // images are decoded with OpenCV
            var n = r.GetValue(predictModel) is { } onnx
                ? Predictor.RunOnnx(onnx, r.GetValue(input)!, r.GetValue(predictOutput)!, interrupt)
                : Predictor.Run(r.GetValue(predictCheckpoint)!, r.GetValue(input)!, r.GetValue(predictOutput)!, interrupt,
                    r.GetValue(predictSet) ?? [], r.GetValue(allowNonFinite), Console.Error, r.GetValue(predictDevice));
            Console.WriteLine($"predicted {n} image(s) into {Path.GetFullPath(r.GetValue(predictOutput)!)}");
            return 0;
        }));

        var exportCheckpoint = new Option<string>("--checkpoint") { Description = "Checkpoint (.ckpt) written by train", Required = true };
        var exportOutput = new Option<string>("--output", "-o") { Description = "The .onnx file to write", Required = true };
        var opset = new Option<int>("--opset") { Description = $"ONNX opset, {OnnxExporter.MinOpset}-{OnnxExporter.MaxOpset}", DefaultValueFactory = _ => 17 };
        var argmax = new Option<bool>("--argmax") { Description = "Output int64 labels [N,H,W] (arg-max over the classes) instead of float logits [N,C,H,W]" };
        var staticSize = new Option<int[]>("--static") { Description = "Fix the input's height and width: --static H W (default: N, H and W dynamic)", Arity = new ArgumentArity(2, 2), AllowMultipleArgumentsPerToken = true };
        var export = new Command("export", "Export a checkpoint's model to ONNX, with class names, palette and normalisation in its metadata")
            { exportCheckpoint, exportOutput, opset, argmax, staticSize };
        export.SetAction(r => Guard(() =>
        {
            (int, int)? size = r.GetValue(staticSize) is [var h, var w] ? (h, w) : null;
            var path = r.GetValue(exportOutput)!;
            var metadata = ExportCommand.Run(r.GetValue(exportCheckpoint)!, path, r.GetValue(opset), r.GetValue(argmax), size, Console.Error);
            Console.WriteLine($"exported {metadata.ModelName} (iteration {metadata.Iteration}, {metadata.ClassNames.Count} classes) to {Path.GetFullPath(path)}");
            return 0;
        }));

        var root = new RootCommand("Seg: semantic segmentation training with Lovász-Softmax. No verb trains the embedded default config into runs/default.")
            { train, eval, predict, export };
        root.SetAction(_ => DataParallel.Run(dp => Guard(() => Train(null, [], null, false, false, interrupt, dp)), Interrupted));
        return root;
    }

    static Option<string> DeviceOption(string defaultText) =>
        new("--device") { Description = $"auto, cpu, cuda or cuda:N ({defaultText}); a checkpoint loads onto any device" };

    static int Train(string? configPath, string[] overrides, string? output, bool resume, bool restart, CancellationToken interrupt, DataParallel dp)
    {
        var (yaml, source) = configPath is null ? (ConfigLoader.DefaultYaml(), "embedded default config")
            : (ConfigLoader.ReadText(configPath), configPath);
        var outcome = Trainer.Run(new TrainRequest(yaml, source, overrides, output, resume, restart), interrupt, dp);
        if (outcome.Status == TrainStatus.Interrupted)
        {
            Console.Error.WriteLine($"interrupted at iteration {outcome.Iteration}; saved {outcome.Paths.Last}; continue with --resume");
            return Interrupted;
        }
        return 0;
    }

    /// <summary>Runs a verb, turning failures into a one-line reason on stderr and an exit code.</summary>
    public static int Guard(Func<int> verb)
    {
        try
        {
            return verb();
        }
        catch (Exception e) when (Environment.GetEnvironmentVariable("SEG_DEBUG") is "1")
        {
            Console.Error.WriteLine(e); // full trace for debugging
            return 1;
        }
        catch (ConfigException e)
        {
            return Fail("config error: " + e.Message, ConfigError);
        }
        catch (TrainingDivergedException e)
        {
            return Fail("error: " + e.Message, Diverged);
        }
        catch (NonFiniteOutputException e)
        {
            return Fail("error: " + e.Message, 1);
        }
        catch (OperationCanceledException)
        {
            return Fail("interrupted", Interrupted);
        }
        catch (TypeInitializationException e) when (e.TypeName?.StartsWith("OpenCvSharp.", StringComparison.Ordinal) == true)
        {
            // OpenCV reached before HeadlessOpenCv.EnsureLoaded: say why it does not load instead of the bare exception.
            try { HeadlessOpenCv.EnsureLoaded(); }
            catch (NativeLoadException loadError) { return Fail("error: " + loadError.Message, 1); }
            return Fail($"error: OpenCV's native library failed to initialise: {e.InnerException?.Message ?? e.Message}", 1);
        }
        catch (NativeLoadException e)
        {
            return Fail("error: " + e.Message, 1);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or BadSampleException or NotSupportedException or UnauthorizedAccessException or DistributedException)
        {
            return Fail("error: " + e.Message, 1);
        }
        catch (Exception e)
        {
            return Fail($"error: {e.GetType().Name}: {e.Message}", 1);
        }
    }

    static int Fail(string message, int code)
    {
        Console.Error.WriteLine(message.ReplaceLineEndings(" "));
        return code;
    }
}
