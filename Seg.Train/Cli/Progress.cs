using System.Diagnostics;
using System.Globalization;
using Spectre.Console;

namespace Seg.Train.Cli;

/// <summary>Where long-running work reports how far it got; the sink adds speed and ETA.</summary>
public interface IProgressSink
{
    /// <summary><paramref name="done"/> of the total units are finished; <paramref name="status"/> says e.g. loss and lr.</summary>
    void Update(long done, string status);

    /// <summary>A message line (evaluation results, checkpoint notes).</summary>
    void Message(string text);
}

/// <summary>
/// A Spectre.Console progress bar when the output is an interactive terminal, else plain lines at a modest rate
/// (every 5 % or 30 s), so that logs of batch jobs stay readable.
/// </summary>
public static class Progress
{
    /// <summary>Runs <paramref name="body"/> with a sink for <paramref name="total"/> units, starting at <paramref name="start"/>.</summary>
    public static T Run<T>(string title, long total, long start, Func<IProgressSink, T> body)
    {
        var interactive = !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;
        if (!interactive) return body(new PlainSink(title, total, start));
        return AnsiConsole.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(title), maxValue: total);
                task.Value = start;
                return body(new BarSink(task, title, start));
            });
    }

    static string Speed(long done, long start, Stopwatch watch) =>
        watch.Elapsed.TotalSeconds > 0 ? ((done - start) / watch.Elapsed.TotalSeconds).ToString("F2", CultureInfo.InvariantCulture) : "-";

    sealed class BarSink(ProgressTask task, string title, long start) : IProgressSink
    {
        readonly Stopwatch watch = Stopwatch.StartNew();

        public void Update(long done, string status)
        {
            task.Value = done;
            task.Description = Markup.Escape($"{title} {done}/{task.MaxValue} {status} {Speed(done, start, watch)} it/s");
        }

        public void Message(string text) => AnsiConsole.MarkupLine(Markup.Escape(text));
    }

    sealed class PlainSink(string title, long total, long start) : IProgressSink
    {
        readonly Stopwatch watch = Stopwatch.StartNew();
        long lastPrinted = long.MinValue;
        TimeSpan lastTime;

        public void Update(long done, string status)
        {
            var step = Math.Max(1, total / 20);
            if (lastPrinted == long.MinValue) lastPrinted = start;
            if (done != total && done - lastPrinted < step && watch.Elapsed - lastTime < TimeSpan.FromSeconds(30)) return;
            lastPrinted = done;
            lastTime = watch.Elapsed;
            var rate = watch.Elapsed.TotalSeconds > 0 ? (done - start) / watch.Elapsed.TotalSeconds : 0;
            var eta = rate > 0 ? TimeSpan.FromSeconds((total - done) / rate).ToString(@"hh\:mm\:ss", CultureInfo.InvariantCulture) : "-";
            Console.WriteLine($"{title} {done}/{total} {status} {Speed(done, start, watch)} it/s ETA {eta}");
        }

        public void Message(string text) => Console.WriteLine(text);
    }
}
