using System.Diagnostics;
using Seg.Train.Training;

namespace Seg.Tests.Train;

/// <summary>One training run per output folder (issue 13): <c>run.lock</c> names its owner, a second run refuses
/// naming it, and a lock left by a dead process is taken over.</summary>
[Collection("Trainer")]
public class RunLockTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("seg-lock-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    string LockFile => Path.Combine(dir, RunLock.FileName);

    [Fact]
    public void SecondRunIsRefusedNamingTheOwnerAndTheFolderIsFreeAfterwards()
    {
        using (var first = RunLock.Acquire(dir))
        {
            Assert.StartsWith($"pid {Environment.ProcessId} on {Environment.MachineName}", File.ReadAllText(LockFile));
            var e = Assert.Throws<IOException>(() => RunLock.Acquire(dir));
            Assert.Contains($"{dir} is in use by another training run (pid {Environment.ProcessId} on", e.Message);
            Assert.Contains("--output", e.Message);
            Assert.DoesNotContain('\n', e.Message);
        }
        Assert.False(File.Exists(LockFile));
        using var again = RunLock.Acquire(dir);
    }

    // A process that holds the lock as a Seg run does (its line written, the file held shared), until killed:
    // flock itself holds it (-o: sleep does not inherit it), with the PID the shell wrote ($$, kept by exec).
    Process Holder(string line)
    {
        var psi = new ProcessStartInfo("sh") { UseShellExecute = false, RedirectStandardOutput = true };
        foreach (var a in new[] { "-c", $"printf '%s\\n' \"pid $$ {line}\" > \"$1\" && echo held && exec flock -s -o \"$1\" sleep 60", "holder", LockFile })
            psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        Assert.Equal("held", p.StandardOutput.ReadLine());
        // flock takes the lock right after the echo; wait until an exclusive open is refused.
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < TimeSpan.FromSeconds(20))
        {
            try { using (new FileStream(LockFile, FileMode.Open, FileAccess.ReadWrite, FileShare.None)) { } }
            catch (IOException) { return p; }
            Thread.Sleep(20);
        }
        throw new InvalidOperationException("the holder process did not lock the file");
    }

    [Fact]
    public void ALiveRunInAnotherProcessIsNamed()
    {
        using var holder = Holder("on otherhost, started 2026-01-01 00:00:00 (nonce)");
        try
        {
            var e = Assert.Throws<IOException>(() => RunLock.Acquire(dir));
            Assert.Contains($"in use by another training run (pid {holder.Id} on otherhost, started 2026-01-01 00:00:00;", e.Message);
        }
        finally
        {
            holder.Kill(entireProcessTree: true);
            holder.WaitForExit();
        }
    }

    [Fact]
    public void ALockLeftByADeadProcessIsTakenOver()
    {
        int pid;
        using (var holder = Holder("on thishost, started 2026-01-01 00:00:00 (nonce)"))
        {
            pid = holder.Id;
            holder.Kill(entireProcessTree: true);
            holder.WaitForExit();
        }
        Assert.StartsWith($"pid {pid} ", File.ReadAllText(LockFile));   // stale: the file stays, its owner is gone

        var notes = new List<string>();
        using var taken = RunLock.Acquire(dir, notes.Add);
        Assert.Contains($"was left by a run that is no longer running (pid {pid} on thishost", Assert.Single(notes));
        Assert.StartsWith($"pid {Environment.ProcessId} ", File.ReadAllText(LockFile));
    }

    [Fact]
    public void TrainingIntoAFolderInUseRefusesBeforeTouchingIt()
    {
        using var other = RunLock.Acquire(dir);
        var marker = Path.Combine(dir, "train_log.csv");
        File.WriteAllText(marker, "the other run's log\n");
        var e = Assert.Throws<IOException>(() => Trainer.Run(TinyRun.Request(dir)));
        Assert.Contains("is in use by another training run", e.Message);
        Assert.Equal("the other run's log\n", File.ReadAllText(marker));
    }
}
