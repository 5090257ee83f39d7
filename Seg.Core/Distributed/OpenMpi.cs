using System.Runtime.InteropServices;

namespace Seg.Core.Distributed;

/// <summary>
/// The few functions of Open MPI's C API that data-parallel training needs, bound by hand. Open MPI's handles are
/// not integers (as in MPICH and MS-MPI) but addresses of exported objects: <c>MPI_COMM_WORLD</c> is
/// <c>&amp;ompi_mpi_comm_world</c>, <c>MPI_FLOAT</c> <c>&amp;ompi_mpi_float</c>, <c>MPI_SUM</c> <c>&amp;ompi_mpi_op_sum</c>;
/// the library's own header says so. So this binding is for Open MPI (4.x, <c>libmpi.so.40</c>) only.
/// </summary>
/// <remarks>
/// Why not MPI.NET 1.4.0: its package binds MS-MPI (Windows) with integer handles; its Linux route is a build
/// from source against the local headers under Mono, which its maintainers describe as unfinished. A dozen
/// function pointers are less to keep working than that.
/// </remarks>
internal sealed unsafe class OpenMpi
{
    /// <summary>The soname of Open MPI 4's library (Debian: package <c>libopenmpi3</c>, pulled in by <c>openmpi-bin</c>).</summary>
    public const string DefaultLibrary = "libmpi.so.40";

    const int ThreadSerialized = 2;   // enum order in mpi.h: SINGLE, FUNNELED, SERIALIZED, MULTIPLE
    const int RtldNow = 0x2, RtldGlobal = 0x100;
    static readonly IntPtr InPlace = 1;  // MPI_IN_PLACE is ((void *) 1)

    readonly delegate* unmanaged<int*, byte***, int, int*, int> initThread;
    readonly delegate* unmanaged<int*, int> initialized, finalized;
    readonly delegate* unmanaged<int> finalize;
    readonly delegate* unmanaged<IntPtr, int*, int> commRank, commSize;
    readonly delegate* unmanaged<IntPtr, IntPtr, int, IntPtr, IntPtr, IntPtr, int> allreduce;
    readonly delegate* unmanaged<IntPtr, int, IntPtr, int, IntPtr, int> bcast;
    readonly delegate* unmanaged<IntPtr, int> barrier;
    readonly delegate* unmanaged<IntPtr, int, int> abort;
    readonly delegate* unmanaged<int, byte*, int*, int> errorString;

    /// <summary>The handles: communicator, datatypes and operations.</summary>
    public readonly IntPtr CommWorld, Byte, Float, Double, Int64, Sum, Min, Max;

    public string Library { get; }

    OpenMpi(string library, IntPtr handle)
    {
        Library = library;
        IntPtr Export(string name)
        {
            if (NativeLibrary.TryGetExport(handle, name, out var address)) return address;
            throw new DistributedException($"{library} has no symbol {name}: it is not Open MPI 4 (the only MPI whose handles this binding knows); install openmpi-bin");
        }
        initThread = (delegate* unmanaged<int*, byte***, int, int*, int>)Export("MPI_Init_thread");
        initialized = (delegate* unmanaged<int*, int>)Export("MPI_Initialized");
        finalized = (delegate* unmanaged<int*, int>)Export("MPI_Finalized");
        finalize = (delegate* unmanaged<int>)Export("MPI_Finalize");
        commRank = (delegate* unmanaged<IntPtr, int*, int>)Export("MPI_Comm_rank");
        commSize = (delegate* unmanaged<IntPtr, int*, int>)Export("MPI_Comm_size");
        allreduce = (delegate* unmanaged<IntPtr, IntPtr, int, IntPtr, IntPtr, IntPtr, int>)Export("MPI_Allreduce");
        bcast = (delegate* unmanaged<IntPtr, int, IntPtr, int, IntPtr, int>)Export("MPI_Bcast");
        barrier = (delegate* unmanaged<IntPtr, int>)Export("MPI_Barrier");
        abort = (delegate* unmanaged<IntPtr, int, int>)Export("MPI_Abort");
        errorString = (delegate* unmanaged<int, byte*, int*, int>)Export("MPI_Error_string");
        CommWorld = Export("ompi_mpi_comm_world");
        Byte = Export("ompi_mpi_byte");
        Float = Export("ompi_mpi_float");
        Double = Export("ompi_mpi_double");
        Int64 = Export("ompi_mpi_int64_t");
        Sum = Export("ompi_mpi_op_sum");
        Min = Export("ompi_mpi_op_min");
        Max = Export("ompi_mpi_op_max");
    }

    /// <summary>
    /// Loads <paramref name="library"/> (a soname or a path) with RTLD_GLOBAL, as Open MPI's plug-ins
    /// (<c>mca_*.so</c>, opened by libmpi itself) resolve libmpi's symbols through the global scope.
    /// </summary>
    /// <exception cref="DistributedException">It cannot be loaded; the message names the library and the package.</exception>
    public static OpenMpi Load(string library)
    {
        if (dlopen(library, RtldNow | RtldGlobal) == IntPtr.Zero)
        {
            var reason = Marshal.PtrToStringUTF8(dlerror()) ?? "unknown reason";
            throw new DistributedException($"an MPI launcher started this process but {library} cannot be loaded ({reason}); install Open MPI 4 (Debian/Ubuntu: apt-get install openmpi-bin, which brings libopenmpi3)");
        }
        // NativeLibrary's handle is the same dlopen handle (reference-counted); GetExport looks symbols up in it.
        return new OpenMpi(library, NativeLibrary.Load(library));
    }

    public bool IsInitialized { get { int flag; Check(initialized(&flag), "MPI_Initialized"); return flag != 0; } }
    public bool IsFinalized { get { int flag; Check(finalized(&flag), "MPI_Finalized"); return flag != 0; } }

    /// <summary>MPI_Init_thread asking for MPI_THREAD_SERIALIZED: one thread at a time, not always the same one
    /// (autograd runs a CUDA backward, and with it SyncBatchNorm's all-reduce, on its own device thread).</summary>
    public void Init()
    {
        int provided;
        Check(initThread(null, null, ThreadSerialized, &provided), "MPI_Init_thread");
        if (provided < ThreadSerialized)
            throw new DistributedException($"{Library} provides thread level {provided}, below MPI_THREAD_SERIALIZED; use an Open MPI built with thread support");
    }

    public void Shutdown() => Check(finalize(), "MPI_Finalize");

    public int Rank { get { int r; Check(commRank(CommWorld, &r), "MPI_Comm_rank"); return r; } }
    public int Size { get { int s; Check(commSize(CommWorld, &s), "MPI_Comm_size"); return s; } }

    public void AllReduceInPlace(void* buffer, int count, IntPtr datatype, IntPtr op) =>
        Check(allreduce(InPlace, (IntPtr)buffer, count, datatype, op, CommWorld), "MPI_Allreduce");

    public void Broadcast(void* buffer, int count, IntPtr datatype, int root) =>
        Check(bcast((IntPtr)buffer, count, datatype, root, CommWorld), "MPI_Bcast");

    public void Barrier() => Check(barrier(CommWorld), "MPI_Barrier");

    /// <summary>MPI_Abort on the world: the launcher kills every rank; normally does not return.</summary>
    public void Abort(int code) => abort(CommWorld, code);

    // With the default error handler (MPI_ERRORS_ARE_FATAL) a failing call aborts the job before it returns; a
    // non-zero code reaches here only under another handler.
    void Check(int code, string function)
    {
        if (code == 0) return;
        var text = new byte[256];
        int length = 0;
        fixed (byte* p = text) errorString(code, p, &length);
        throw new DistributedException($"{function} failed: {System.Text.Encoding.UTF8.GetString(text, 0, Math.Clamp(length, 0, text.Length))} (code {code})");
    }

    [DllImport("libc.so.6")]
    static extern IntPtr dlopen(string file, int mode);

    [DllImport("libc.so.6")]
    static extern IntPtr dlerror();
}
