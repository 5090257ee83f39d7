using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using TorchSharp;
using Seg.Platform.Native;

namespace Seg.Core.Native;

/// <summary>
/// A parallel loop for Seg's CPU kernels that runs on libtorch's own OpenMP thread team (libgomp's
/// <c>GOMP_parallel</c>), the threads ATen's own kernels use.
/// </summary>
/// <remarks>
/// Why not <see cref="Parallel.For(long, long, Action{long})"/>: after every parallel ATen op, libgomp's workers
/// busy-wait for the next one (for milliseconds, by default). A kernel on .NET's thread pool that runs between
/// two ATen ops then shares the cores with those spinning workers; on a 2-core machine that made the histogram
/// Lovász kernel about 1.5–2× slower inside a training step than on its own. On the OpenMP team the spinning
/// workers take the work instead. Where libgomp is not loaded (other platforms or builds) the loop falls back to
/// <see cref="Parallel.For(long, long, ParallelOptions, Action{long})"/>.
/// </remarks>
internal static unsafe class TorchParallel
{
    static readonly delegate* unmanaged<delegate* unmanaged<void*, void>, void*, uint, uint, void> GompParallel = FindGompParallel();

    /// <summary>True when loops run on libtorch's OpenMP team.</summary>
    public static bool OnOpenMpTeam => GompParallel != null;

    /// <summary>Runs <paramref name="body"/> for 0 ≤ i &lt; <paramref name="count"/> on up to
    /// <paramref name="maxThreads"/> threads (default: torch's thread count), items handed out one at a time; the
    /// first exception is rethrown after the loop.</summary>
    public static void For(long count, Action<long> body, int? maxThreads = null)
    {
        int threads = (int)Math.Min(Math.Max(1, maxThreads ?? torch.get_num_threads()), Math.Max(1, count));
        if (threads == 1)
        {
            for (long i = 0; i < count; i++) body(i);
            return;
        }
        if (GompParallel == null)
        {
            Parallel.For(0L, count, new ParallelOptions { MaxDegreeOfParallelism = threads }, body);
            return;
        }
        var loop = new Loop(count, body);
        var handle = GCHandle.Alloc(loop);
        try
        {
            GompParallel(&RunTeamMember, (void*)GCHandle.ToIntPtr(handle), (uint)threads, 0);
        }
        finally
        {
            handle.Free();
        }
        loop.Failure?.Throw();
    }

    sealed class Loop(long count, Action<long> body)
    {
        public readonly long Count = count;
        public readonly Action<long> Body = body;
        public long Next;
        public ExceptionDispatchInfo? Failure;
    }

    /// <summary>What every team member runs: take items until none are left or one has failed. Exceptions must
    /// not cross into native code, so they are kept for the caller.</summary>
    [UnmanagedCallersOnly]
    static void RunTeamMember(void* state)
    {
        var loop = (Loop)GCHandle.FromIntPtr((nint)state).Target!;
        try
        {
            long i;
            while (Volatile.Read(ref loop.Failure) is null && (i = Interlocked.Increment(ref loop.Next) - 1) < loop.Count)
                loop.Body(i);
        }
        catch (Exception e)
        {
            Interlocked.CompareExchange(ref loop.Failure, ExceptionDispatchInfo.Capture(e), null);
        }
    }

    static delegate* unmanaged<delegate* unmanaged<void*, void>, void*, uint, uint, void> FindGompParallel()
    {
        if (!OperatingSystem.IsLinux()) return null;
        torch.get_num_threads();   // makes sure libtorch, and with it its libgomp, is loaded
        foreach (var path in MappedLibraries.Find("libgomp"))
            if (NativeLibrary.TryLoad(path, out var library) && NativeLibrary.TryGetExport(library, "GOMP_parallel", out var export))
                return (delegate* unmanaged<delegate* unmanaged<void*, void>, void*, uint, uint, void>)export;
        return null;
    }
}
