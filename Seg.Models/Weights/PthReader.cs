using System.IO.Compression;
using System.IO.Hashing;
using System.Numerics;
using Seg.Core;
using Seg.Core.Readers;
using static TorchSharp.torch;

namespace Seg.Models.Weights;

/// <summary>
/// Reads what <c>torch.save(obj, f)</c> writes since PyTorch 1.6: a zip archive with <c>{root}/data.pkl</c> (the
/// pickled object) and one raw little-endian file per storage under <c>{root}/data/</c>. The pickle goes through
/// <see cref="RestrictedUnpickler"/>; tensors become strided views of their storage, so views that shared a storage
/// in Python share memory here too. A checkpoint dict that wraps the state_dict under <c>state_dict</c>,
/// <c>model_state_dict</c> or <c>model</c> is unwrapped.
/// <para>The archive is untrusted: only <c>data.pkl</c> and the storages the pickle refers to are read; each entry's
/// declared size is checked against the file (and, for compressed entries, against deflate's largest ratio and
/// <see cref="ReaderLimits.MaxDecompressedBytes"/>) before memory is allocated; reading stops at the declared size;
/// and every entry read must match its CRC-32. Views are checked against their storage in C# before libtorch sees
/// them.</para>
/// </summary>
internal static class PthReader
{
    static readonly string[] WrapperKeys = ["state_dict", "model_state_dict", "model"];

    public static Dictionary<string, Tensor> Read(string path)
    {
        using var file = File.OpenRead(path);
        var archive = new Archive(file, path);
        using var zip = archive.Zip;
        var pkl = archive.DataPickle();
        string root = pkl.FullName[..(pkl.FullName.IndexOf('/') + 1)];
        if (zip.GetEntry(root + "byteorder") is { } order && archive.ReadBytes(order, maxLength: 16).AsSpan().SequenceEqual("big"u8))
            throw new InvalidDataException($"{path}: big-endian tensor data is not supported.");

        var top = RestrictedUnpickler.Load(archive.ReadBytes(pkl, maxLength: int.MaxValue), $"{path} ({pkl.FullName})");
        var dict = SelectStateDict(top) ?? throw new InvalidDataException(
            $"{path}: the saved object is not a state_dict (a dict of tensors, possibly under 'state_dict', 'model_state_dict' or 'model').");

        var storages = new Dictionary<string, (Tensor Data, StorageRef Ref)>(StringComparer.Ordinal);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var (k, v) in dict.Items)
            {
                if (v is not TensorRecord t) continue; // non-tensor entries (e.g. counters) are not weights
                if (k is not string key) throw new InvalidDataException($"{path}: a tensor is stored under the key {k ?? "None"}, not under a name.");
                if (result.ContainsKey(key)) throw new InvalidDataException($"{path}: tensor '{key}' appears twice in the state_dict.");
                if (!storages.TryGetValue(t.Storage.Key, out var storage))
                    storages[t.Storage.Key] = storage = (LoadStorage(archive, root, t.Storage, key), t.Storage);
                else if (storage.Ref.StorageType != t.Storage.StorageType)
                    throw new InvalidDataException($"{path}: storage '{t.Storage.Key}' is read as {storage.Ref.StorageType.Name} and as {t.Storage.StorageType.Name} (tensor '{key}').");
                result[key] = View(storage.Data, t, $"{path}: tensor '{key}'");
            }
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
        finally
        {
            foreach (var s in storages.Values) s.Data.Dispose(); // the views keep the memory alive
        }
        return result;
    }

    static PickleDict? SelectStateDict(object? top)
    {
        if (top is not PickleDict d) return null;
        if (d.Items.Any(kv => kv.Value is TensorRecord)) return d;
        foreach (var name in WrapperKeys)
            if (d.Items.FirstOrDefault(kv => kv.Key is string k && k == name).Value is PickleDict inner && inner.Items.Any(kv => kv.Value is TensorRecord))
                return inner;
        return d.Items.Count == 0 ? d : null;
    }

    static Tensor LoadStorage(Archive archive, string root, StorageRef storage, string key)
    {
        string path = archive.Path;
        var entry = archive.Zip.GetEntry(root + "data/" + storage.Key)
            ?? throw new InvalidDataException($"{path}: tensor '{key}' refers to storage '{storage.Key}', which the archive lacks.");
        var dtype = DTypes.FromStorageName(storage.StorageType.Name);
        int size = DTypes.ElementSize(dtype);
        long bytes = archive.CheckedLength(entry);
        if (bytes % size != 0)
            throw new InvalidDataException($"{path}: storage '{storage.Key}' of tensor '{key}' has {bytes} bytes, not a multiple of {size} ({dtype}).");
        if (storage.Numel is long numel && (numel < 0 || numel > long.MaxValue / size || numel * size != bytes))
            throw new InvalidDataException($"{path}: storage '{storage.Key}' of tensor '{key}' declares {numel} elements of {dtype} but its entry holds {bytes} bytes.");
        return archive.ReadTensor(entry, bytes, dtype, $"{path}: storage '{storage.Key}' ({entry.FullName})");
    }

    /// <summary>The strided view torch's <c>_rebuild_tensor_v2</c> makes, after checking in C# that it lies inside its
    /// storage (ranks, non-negative sizes/strides/offset, no overflow).</summary>
    static Tensor View(Tensor storage, TensorRecord t, string what)
    {
        if (t.Size.Length != t.Stride.Length)
            throw new InvalidDataException($"{what} has {t.Size.Length} sizes but {t.Stride.Length} strides.");
        if (t.Size.Length > DTypes.MaxDims)
            throw new InvalidDataException($"{what} declares {t.Size.Length} dimensions (at most {DTypes.MaxDims} are read).");
        if (t.Size.Any(s => s < 0) || t.Stride.Any(s => s < 0) || t.Offset < 0)
            throw new InvalidDataException($"{what} has a negative size, stride or offset (size {DTypes.Shape(t.Size)}, stride {DTypes.Shape(t.Stride)}, offset {t.Offset}).");
        long elements = storage.shape[0];
        BigInteger numel = t.Size.Aggregate(BigInteger.One, (a, s) => a * s);
        if (numel == 0)
        {
            if (t.Offset > elements) throw new InvalidDataException($"{what} starts at element {t.Offset} of a storage with {elements} elements.");
        }
        else
        {
            BigInteger last = t.Offset + t.Size.Zip(t.Stride, (s, st) => (BigInteger)(s - 1) * st).Aggregate(BigInteger.Zero, (a, b) => a + b);
            if (last >= elements)
                throw new InvalidDataException($"{what} of size {DTypes.Shape(t.Size)}, stride {DTypes.Shape(t.Stride)} and offset {t.Offset} reaches element {DTypes.Count(last)} of a storage with {elements} elements.");
        }
        return storage.as_strided(t.Size, t.Stride, t.Offset);
    }

    /// <summary>
    /// The zip layer: .NET's <see cref="ZipArchive"/> for the directory, with every failure of it turned into an
    /// <see cref="InvalidDataException"/> naming the file, and the size, decompression and CRC checks done here.
    /// </summary>
    sealed class Archive
    {
        readonly long fileLength;
        long inflated;

        public Archive(FileStream file, string path)
        {
            Path = path;
            fileLength = file.Length;
            ZipArchive? zip = null;
            try
            {
                zip = new ZipArchive(file, ZipArchiveMode.Read, leaveOpen: true);
                var names = new HashSet<string>(StringComparer.Ordinal);
                foreach (var entry in zip.Entries) // the central directory is read here
                    if (!names.Add(entry.FullName))
                        throw new InvalidDataException($"{path}: the zip archive lists '{entry.FullName}' twice.");
                Zip = zip;
            }
            catch (Exception e)
            {
                zip?.Dispose();
                if (e is InvalidDataException && e.Message.StartsWith(path, StringComparison.Ordinal)) throw;
                if (IsZipFailure(e)) throw new InvalidDataException($"{path}: not a readable zip archive ({e.Message})", e);
                throw;
            }
        }

        public string Path { get; }
        public ZipArchive Zip { get; }

        public ZipArchiveEntry DataPickle()
        {
            var candidates = Zip.Entries.Where(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal) && e.FullName.Count(c => c == '/') == 1).ToList();
            return candidates.Count switch
            {
                1 => candidates[0],
                0 => throw new InvalidDataException($"{Path}: zip archive without '<root>/data.pkl': not a torch.save file."),
                _ => throw new InvalidDataException($"{Path}: zip archive with {candidates.Count} '<root>/data.pkl' entries: not a torch.save file."),
            };
        }

        /// <summary>The entry's declared size, after checking it is one the file can hold: a stored entry no larger
        /// than the file, a compressed one within deflate's ratio and, with every other compressed entry read, within
        /// <see cref="ReaderLimits.MaxDecompressedBytes"/>.</summary>
        public long CheckedLength(ZipArchiveEntry entry)
        {
            long length, compressed;
            try { (length, compressed) = (entry.Length, entry.CompressedLength); }
            catch (Exception e) when (IsZipFailure(e)) { throw Corrupt(entry, e); }
            if (length < 0 || compressed < 0 || compressed > fileLength)
                throw new InvalidDataException($"{Path}: entry '{entry.FullName}' declares {compressed} compressed bytes in a file of {fileLength} bytes.");
            if (length > compressed)
            {
                if (length > ReaderLimits.InflateBound(compressed) || inflated + length > ReaderLimits.MaxDecompressedBytes)
                    throw new InvalidDataException(
                        $"{Path}: entry '{entry.FullName}' declares {ReaderLimits.DescribeBytes(length)} from {compressed} compressed bytes, beyond the " +
                        $"decompression limit ({ReaderLimits.DescribeBytes(ReaderLimits.MaxDecompressedBytes)} per file, {ReaderLimits.DeflateMaxRatio}x the compressed size; " +
                        $"ReaderLimits.MaxDecompressedBytes or {ReaderLimits.MaxDecompressedBytesVariable} raise it).");
                inflated += length;
            }
            return length;
        }

        public byte[] ReadBytes(ZipArchiveEntry entry, int maxLength)
        {
            long length = CheckedLength(entry);
            if (length > maxLength) throw new InvalidDataException($"{Path}: entry '{entry.FullName}' declares {length} bytes, more than the {maxLength} it may have.");
            return Read(entry, (s, crc) => DTypes.ReadBytes(s, (int)length, $"{Path}: entry '{entry.FullName}'", crc.Append));
        }

        public Tensor ReadTensor(ZipArchiveEntry entry, long bytes, ScalarType dtype, string what) =>
            Read(entry, (s, crc) => DTypes.ReadTensor(s, bytes, dtype, [bytes / DTypes.ElementSize(dtype)], what, crc.Append));

        /// <summary>Opens the entry, reads its declared length with <paramref name="read"/>, then checks that nothing
        /// follows and that the CRC-32 matches; any failure names the file and entry.</summary>
        T Read<T>(ZipArchiveEntry entry, Func<Stream, Crc32, T> read) where T : class
        {
            T? value = null;
            bool ok = false;
            try
            {
                using var stream = entry.Open();
                var crc = new Crc32();
                value = read(stream, crc);
                if (stream.ReadByte() >= 0)
                    throw new InvalidDataException($"{Path}: entry '{entry.FullName}' holds more than the {entry.Length} bytes its header declares.");
                uint actual = crc.GetCurrentHashAsUInt32();
                if (actual != entry.Crc32)
                    throw new InvalidDataException($"{Path}: entry '{entry.FullName}' fails its CRC-32 check (stored {entry.Crc32:x8}, computed {actual:x8}): the file is corrupt.");
                ok = true;
                return value;
            }
            catch (InvalidDataException e) when (e.Message.StartsWith(Path, StringComparison.Ordinal)) { throw; }
            catch (Exception e) when (IsZipFailure(e)) { throw Corrupt(entry, e); }
            finally
            {
                if (!ok) (value as IDisposable)?.Dispose();
            }
        }

        InvalidDataException Corrupt(ZipArchiveEntry entry, Exception e) =>
            new($"{Path}: zip entry '{entry.FullName}' is corrupt ({e.Message})", e);

        static bool IsZipFailure(Exception e) =>
            e is InvalidDataException or ArgumentException or NotSupportedException or IOException or OverflowException
                or InvalidOperationException or IndexOutOfRangeException or FormatException;
    }
}
