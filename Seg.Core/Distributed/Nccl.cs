using System.Runtime.InteropServices;

namespace Seg.Core.Distributed;

/// <summary>
/// NCCL (<c>libnccl.so.2</c>) for CUDA tensors, bound by hand like <see cref="OpenMpi"/>: rank 0 makes a unique
/// id, MPI broadcasts its 128 bytes, every rank joins the communicator with it (Horovod's design). Collectives
/// are queued on CUDA stream 0, the legacy default stream, which libtorch's default stream is, so they run in
/// order with the kernels around them and nothing waits on the host.
/// </summary>
/// <remarks>Written against NCCL's documented C API but not yet run on a GPU: the machine it was written on has none.</remarks>
internal sealed unsafe class Nccl : IDisposable
{
    public const string Library = "libnccl.so.2";

    /// <summary>ncclUniqueId: an opaque 128-byte struct passed by value.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 128)]
    struct UniqueId { fixed byte bytes[128]; }

    // ncclDataType_t and ncclRedOp_t values from nccl.h (stable since NCCL 2.0).
    public const int Int64 = 4, Float16 = 6, Float32 = 7, Float64 = 8, BFloat16 = 9;
    public const int Sum = 0, Max = 2, Min = 3;

    readonly delegate* unmanaged<UniqueId*, int> getUniqueId;
    readonly delegate* unmanaged<IntPtr*, int, UniqueId, int, int> commInitRank;
    readonly delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int> allReduce;
    readonly delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int> broadcast;
    readonly delegate* unmanaged<IntPtr, int> commDestroy, commAbort;
    readonly delegate* unmanaged<int, IntPtr> getErrorString;
    IntPtr comm;

    /// <summary>The CUDA device the communicator was created on (current at ncclCommInitRank).</summary>
    public int Device { get; private set; }

    Nccl(IntPtr handle)
    {
        IntPtr Export(string name) => NativeLibrary.TryGetExport(handle, name, out var a) ? a
            : throw new DistributedException($"{Library} has no symbol {name}; install NCCL 2 (NVIDIA's libnccl2 package)");
        getUniqueId = (delegate* unmanaged<UniqueId*, int>)Export("ncclGetUniqueId");
        commInitRank = (delegate* unmanaged<IntPtr*, int, UniqueId, int, int>)Export("ncclCommInitRank");
        allReduce = (delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int>)Export("ncclAllReduce");
        broadcast = (delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int>)Export("ncclBroadcast");
        commDestroy = (delegate* unmanaged<IntPtr, int>)Export("ncclCommDestroy");
        commAbort = (delegate* unmanaged<IntPtr, int>)Export("ncclCommAbort");
        getErrorString = (delegate* unmanaged<int, IntPtr>)Export("ncclGetErrorString");
    }

    /// <summary>Joins every rank of <paramref name="mpi"/> into one NCCL communicator on <paramref name="device"/>
    /// (a collective: all ranks call it), which must be current on the calling thread.</summary>
    public static Nccl Create(OpenMpi mpi, int rank, int size, int device)
    {
        if (!NativeLibrary.TryLoad(Library, out var handle))
            throw new DistributedException($"CUDA tensors are reduced with NCCL but {Library} cannot be loaded; install NCCL 2 (NVIDIA's libnccl2 package, or a CUDA PyTorch's nvidia-nccl-cu12 wheel on LD_LIBRARY_PATH)");
        var nccl = new Nccl(handle);
        UniqueId id;
        if (rank == 0) nccl.Check(nccl.getUniqueId(&id), "ncclGetUniqueId");
        mpi.Broadcast(&id, sizeof(UniqueId), mpi.Byte, 0);
        IntPtr c;
        nccl.Check(nccl.commInitRank(&c, size, id, rank), "ncclCommInitRank");
        nccl.comm = c;
        nccl.Device = device;
        return nccl;
    }

    /// <summary>In-place all-reduce of <paramref name="count"/> elements at device address <paramref name="buffer"/>.</summary>
    public void AllReduceInPlace(IntPtr buffer, long count, int datatype, int op) =>
        Check(allReduce(buffer, buffer, (nuint)count, datatype, op, comm, IntPtr.Zero), "ncclAllReduce");

    /// <summary>In-place broadcast from <paramref name="root"/>.</summary>
    public void BroadcastInPlace(IntPtr buffer, long count, int datatype, int root) =>
        Check(broadcast(buffer, buffer, (nuint)count, datatype, root, comm, IntPtr.Zero), "ncclBroadcast");

    /// <summary>Tears the communicator down without waiting for pending work (a failing rank, before MPI_Abort).</summary>
    public void Abort()
    {
        if (comm != IntPtr.Zero) commAbort(comm);
        comm = IntPtr.Zero;
    }

    public void Dispose()
    {
        if (comm != IntPtr.Zero) commDestroy(comm);
        comm = IntPtr.Zero;
    }

    void Check(int result, string function)
    {
        if (result == 0) return;
        throw new DistributedException($"{function} failed: {Marshal.PtrToStringUTF8(getErrorString(result))} (ncclResult {result})");
    }
}
