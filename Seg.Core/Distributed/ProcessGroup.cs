using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Core.Distributed;

/// <summary>How <see cref="ProcessGroup.AllReduce{T}(Span{T}, ReduceOp)"/> combines the ranks' values.</summary>
public enum ReduceOp
{
    /// <summary>Elementwise sum.</summary>
    Sum,
    /// <summary>Elementwise minimum.</summary>
    Min,
    /// <summary>Elementwise maximum.</summary>
    Max,
}

/// <summary>
/// The processes of one data-parallel job and the collectives between them: Open MPI for host memory and CPU
/// tensors, NCCL for CUDA tensors (set up on first use). <see cref="Initialize()"/> loads libmpi only when an MPI
/// launcher started the process (<see cref="Launcher"/>); otherwise it returns a one-process group whose
/// collectives do nothing, so code written for N processes runs unchanged, and unaffected, in one.
/// </summary>
/// <remarks>
/// Every collective is a rendezvous: all ranks must call the same collectives in the same order with the same
/// sizes. A rank that fails must call <see cref="Abort"/> (the launcher then ends every rank) rather than leave the
/// others waiting in a collective.
/// </remarks>
public sealed unsafe class ProcessGroup : IDisposable
{
    /// <summary>Environment variable that names another Open MPI library file (default <c>libmpi.so.40</c>).</summary>
    public const string LibraryVariable = "SEG_LIBMPI";

    readonly OpenMpi? mpi;
    Nccl? nccl;
    bool finalized;

    ProcessGroup(OpenMpi? mpi, int rank, int size, int localRank) => (this.mpi, Rank, Size, LocalRank) = (mpi, rank, size, localRank);

    /// <summary>A group of one process (rank 0 of 1): every collective returns its input.</summary>
    public static ProcessGroup Single() => new(null, 0, 1, 0);

    /// <summary>Joins the job this process was launched into (MPI_Init), or returns <see cref="Single"/> when no launcher started it.</summary>
    /// <exception cref="DistributedException">A launcher started the process but libmpi cannot be loaded or the environment is inconsistent.</exception>
    public static ProcessGroup Initialize() => Initialize(Launcher.CurrentEnvironment());

    /// <summary>As <see cref="Initialize()"/>, reading the launcher from <paramref name="environment"/>
    /// (<see cref="LibraryVariable"/> in it may name the library).</summary>
    public static ProcessGroup Initialize(IReadOnlyDictionary<string, string> environment)
    {
        var launch = Launcher.Detect(environment);
        if (launch is null) return Single();
        var library = environment.TryGetValue(LibraryVariable, out var l) && !string.IsNullOrWhiteSpace(l) ? l : OpenMpi.DefaultLibrary;
        var mpi = OpenMpi.Load(library);
        if (!mpi.IsInitialized) mpi.Init();
        var (rank, size) = (mpi.Rank, mpi.Size);
        if ((launch.Size > 0 && launch.Size != size) || launch.Rank != rank)
            throw new DistributedException($"the launcher says rank {launch.Rank} of {launch.Size} ({launch.Variable}) but {library} says rank {rank} of {size}: was the job started by another MPI's launcher?");
        return new ProcessGroup(mpi, rank, size, launch.LocalRank);
    }

    /// <summary>This process's rank, 0 ≤ Rank &lt; <see cref="Size"/>.</summary>
    public int Rank { get; }

    /// <summary>Number of processes (the world size).</summary>
    public int Size { get; }

    /// <summary>Rank among the processes on this machine; rank r uses GPU <c>LocalRank mod device count</c>.</summary>
    public int LocalRank { get; }

    /// <summary>Whether this is rank 0, the one that writes files and prints progress.</summary>
    public bool IsMain => Rank == 0;

    /// <summary>Whether MPI is in use (a launcher started the process), even with one rank.</summary>
    public bool IsDistributed => mpi is not null;

    /// <summary>Combines <paramref name="data"/> elementwise over all ranks, in place (float, double, long or byte).</summary>
    public void AllReduce<T>(Span<T> data, ReduceOp op = ReduceOp.Sum) where T : unmanaged
    {
        if (mpi is null) return;
        var type = MpiType<T>();
        var mpiOp = MpiOp(op);
        fixed (T* p = data)
        {
            var address = (IntPtr)p;   // a fixed pointer cannot be captured; the address can (it stays pinned here)
            InChunks(data.Length, (done, n) => mpi.AllReduceInPlace((T*)address + done, n, type, mpiOp));
        }
    }

    /// <summary>Copies <paramref name="root"/>'s <paramref name="data"/> into every rank's (same length on every rank).</summary>
    public void Broadcast<T>(Span<T> data, int root = 0) where T : unmanaged
    {
        if (mpi is null) return;
        var type = MpiType<T>();
        fixed (T* p = data)
        {
            var address = (IntPtr)p;
            InChunks(data.Length, (done, n) => mpi.Broadcast((T*)address + done, n, type, root));
        }
    }

    // MPI counts are int: longer buffers go in chunks of at most int.MaxValue elements.
    static void InChunks(long length, Action<long, int> call)
    {
        for (long done = 0; done < length;)
        {
            int n = (int)Math.Min(int.MaxValue, length - done);
            call(done, n);
            done += n;
        }
    }

    IntPtr MpiOp(ReduceOp op) => op switch { ReduceOp.Sum => mpi!.Sum, ReduceOp.Min => mpi!.Min, _ => mpi!.Max };

    /// <summary>Broadcasts a byte array whose length only <paramref name="root"/> knows; every rank gets a copy.</summary>
    public byte[] Broadcast(byte[]? data, int root = 0)
    {
        if (mpi is null) return data ?? [];
        long[] length = [Rank == root ? (data ?? []).LongLength : 0];
        Broadcast<long>(length, root);
        var result = Rank == root ? data ?? [] : new byte[length[0]];
        Broadcast<byte>(result, root);
        return result;
    }

    /// <summary>Every rank's <paramref name="item"/>, in rank order (one broadcast per rank: for small data).</summary>
    public IReadOnlyList<byte[]> AllGather(byte[] item)
    {
        if (mpi is null) return [item];
        var result = new byte[Size][];
        for (var root = 0; root < Size; root++) result[root] = Broadcast(Rank == root ? item : null, root);
        return result;
    }

    /// <summary>
    /// Combines <paramref name="tensor"/> over all ranks in place. CUDA tensors go through NCCL on the default
    /// stream (queued, no host wait); CPU tensors through MPI. Floating and int64 tensors only.
    /// </summary>
    public void AllReduce(Tensor tensor, ReduceOp op = ReduceOp.Sum)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (mpi is null || Size == 1 && tensor.device_type == DeviceType.CPU) return;
        WithDenseBuffer(tensor, buffer =>
        {
            if (buffer.device_type == DeviceType.CUDA)
                Communicator(buffer.device_index).AllReduceInPlace(DataPointer(buffer), buffer.numel(), NcclType(buffer.dtype),
                    op switch { ReduceOp.Sum => Nccl.Sum, ReduceOp.Min => Nccl.Min, _ => Nccl.Max });
            else if (buffer.device_type == DeviceType.CPU)
                HostCollective(buffer, (p, n, type) => mpi.AllReduceInPlace((void*)p, n, type, MpiOp(op)));
            else
                throw new NotSupportedException($"collectives on {buffer.device} tensors: only CPU (MPI) and CUDA (NCCL) are supported");
        });
    }

    /// <summary>Copies <paramref name="root"/>'s <paramref name="tensor"/> into every rank's, in place (same shape everywhere).</summary>
    public void Broadcast(Tensor tensor, int root = 0)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (mpi is null) return;
        WithDenseBuffer(tensor, buffer =>
        {
            if (buffer.device_type == DeviceType.CUDA)
                Communicator(buffer.device_index).BroadcastInPlace(DataPointer(buffer), buffer.numel(), NcclType(buffer.dtype), root);
            else if (buffer.device_type == DeviceType.CPU)
                HostCollective(buffer, (p, n, type) => mpi.Broadcast((void*)p, n, type, root));
            else
                throw new NotSupportedException($"collectives on {buffer.device} tensors: only CPU (MPI) and CUDA (NCCL) are supported");
        });
    }

    /// <summary>Waits until every rank has called it.</summary>
    public void Barrier() => mpi?.Barrier();

    /// <summary>
    /// Ends the whole job now with exit code <paramref name="code"/> (MPI_Abort: the launcher kills every rank,
    /// including those blocked in a collective). In a one-process group it only returns.
    /// </summary>
    public void Abort(int code)
    {
        if (mpi is null) return;
        try { nccl?.Abort(); } catch (DistributedException) { }
        Console.Out.Flush();
        Console.Error.Flush();
        mpi.Abort(code);
    }

    /// <summary>Leaves the job (NCCL communicator, then MPI_Finalize). Call it on every rank after the last collective.</summary>
    public void Dispose()
    {
        if (mpi is null || finalized) return;
        finalized = true;
        nccl?.Dispose();
        nccl = null;
        if (!mpi.IsFinalized) mpi.Shutdown();
    }

    // The communicator lives on the device of the first CUDA tensor reduced (this rank's training device), and
    // that device is made current on the calling thread before every call (see CudaContext).
    Nccl Communicator(int device)
    {
        CudaContext.MakeCurrent(device);
        if (nccl is { } existing)
        {
            if (existing.Device != device)
                throw new NotSupportedException($"NCCL collectives on cuda:{device}, but this rank's communicator is on cuda:{existing.Device}: one GPU per rank");
            return existing;
        }
        return nccl = Nccl.Create(mpi!, Rank, Size, device);
    }

    // Collectives need one dense block that starts at its storage's first byte: use the tensor itself when it is
    // one, else a contiguous copy that is written back afterwards.
    static void WithDenseBuffer(Tensor tensor, Action<Tensor> run)
    {
        if (tensor.is_contiguous() && tensor.storage_offset() == 0)
        {
            run(tensor);
            return;
        }
        using var copy = tensor.contiguous().clone();
        run(copy);
        tensor.copy_(copy);
    }

    void HostCollective(Tensor buffer, Action<IntPtr, int, IntPtr> call)
    {
        var (type, size) = buffer.dtype switch
        {
            ScalarType.Float32 => (mpi!.Float, 4),
            ScalarType.Float64 => (mpi!.Double, 8),
            ScalarType.Int64 => (mpi!.Int64, 8),
            ScalarType.Byte => (mpi!.Byte, 1),
            _ => throw new NotSupportedException($"MPI collectives on {buffer.dtype} tensors: use float32, float64, int64 or uint8"),
        };
        var p = DataPointer(buffer);
        InChunks(buffer.numel(), (done, n) => call(p + (nint)(done * size), n, type));
    }

    static IntPtr DataPointer(Tensor t) => t.dtype switch
    {
        ScalarType.Float32 => Pointer<float>(t),
        ScalarType.Float64 => Pointer<double>(t),
        ScalarType.Int64 => Pointer<long>(t),
        ScalarType.Byte => Pointer<byte>(t),
        _ => throw new NotSupportedException($"collectives on {t.dtype} tensors"),
    };

    static IntPtr Pointer<T>(Tensor t) where T : unmanaged
    {
        using var storage = t.storage<T>();
        return storage.data_ptr();
    }

    static int NcclType(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => Nccl.Float32,
        ScalarType.Float64 => Nccl.Float64,
        ScalarType.Float16 => Nccl.Float16,
        ScalarType.BFloat16 => Nccl.BFloat16,
        ScalarType.Int64 => Nccl.Int64,
        _ => throw new NotSupportedException($"NCCL collectives on {dtype} tensors"),
    };

    IntPtr MpiType<T>() where T : unmanaged
    {
        if (typeof(T) == typeof(float)) return mpi!.Float;
        if (typeof(T) == typeof(double)) return mpi!.Double;
        if (typeof(T) == typeof(long)) return mpi!.Int64;
        if (typeof(T) == typeof(byte)) return mpi!.Byte;
        throw new NotSupportedException($"MPI collectives on {typeof(T).Name}: use float, double, long or byte");
    }
}
