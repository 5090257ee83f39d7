using System.IO.Compression;
using static TorchSharp.torch;

namespace Seg.Models.Weights;

/// <summary>
/// Reads what <c>torch.save(obj, f)</c> writes since PyTorch 1.6: a zip archive with <c>{root}/data.pkl</c> (the
/// pickled object) and one raw little-endian file per storage under <c>{root}/data/</c>. The pickle goes through
/// <see cref="RestrictedUnpickler"/>; tensors become strided views of their storage, so views that shared a storage
/// in Python share memory here too. A checkpoint dict that wraps the state_dict under <c>state_dict</c>,
/// <c>model_state_dict</c> or <c>model</c> is unwrapped.
/// </summary>
internal static class PthReader
{
    static readonly string[] WrapperKeys = ["state_dict", "model_state_dict", "model"];

    public static Dictionary<string, Tensor> Read(string path)
    {
        using var zip = OpenZip(path);
        var pkl = zip.Entries.FirstOrDefault(e => e.FullName.EndsWith("data.pkl", StringComparison.Ordinal) && e.FullName.Count(c => c == '/') == 1)
            ?? throw new InvalidDataException($"{path}: zip archive without '<root>/data.pkl': not a torch.save file.");
        string root = pkl.FullName[..(pkl.FullName.IndexOf('/') + 1)];
        var order = zip.GetEntry(root + "byteorder");
        if (order is not null && ReadAll(order).AsSpan().SequenceEqual("big"u8))
            throw new InvalidDataException($"{path}: big-endian tensor data is not supported.");

        var top = RestrictedUnpickler.Load(ReadAll(pkl), $"{path} ({pkl.FullName})");
        var dict = SelectStateDict(top) ?? throw new InvalidDataException(
            $"{path}: the saved object is not a state_dict (a dict of tensors, possibly under 'state_dict', 'model_state_dict' or 'model').");

        var storages = new Dictionary<string, Tensor>();
        var result = new Dictionary<string, Tensor>();
        try
        {
            foreach (var (k, v) in dict.Items)
            {
                if (k is not string key || v is not TensorRecord t) continue; // non-tensor entries (e.g. counters) are not weights
                if (!storages.TryGetValue(t.Storage.Key, out var storage))
                    storages[t.Storage.Key] = storage = LoadStorage(zip, root, t.Storage, path, key);
                result[key] = View(storage, t, path, key);
            }
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
        finally
        {
            foreach (var s in storages.Values) s.Dispose(); // the views keep the memory alive
        }
        return result;
    }

    static ZipArchive OpenZip(string path)
    {
        try { return ZipFile.OpenRead(path); }
        catch (InvalidDataException e) { throw new InvalidDataException($"{path}: not a readable zip archive ({e.Message}).", e); }
    }

    static byte[] ReadAll(ZipArchiveEntry entry)
    {
        using var s = entry.Open();
        using var ms = new MemoryStream(checked((int)entry.Length));
        s.CopyTo(ms);
        return ms.ToArray();
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

    static Tensor LoadStorage(ZipArchive zip, string root, StorageRef storage, string path, string key)
    {
        var entry = zip.GetEntry(root + "data/" + storage.Key)
            ?? throw new InvalidDataException($"{path}: tensor '{key}' refers to storage '{storage.Key}', which the archive lacks.");
        var dtype = DTypes.FromStorageName(storage.StorageType.Name);
        var bytes = ReadAll(entry);
        int size = DTypes.ElementSize(dtype);
        if (bytes.Length % size != 0)
            throw new InvalidDataException($"{path}: storage '{storage.Key}' of tensor '{key}' has {bytes.Length} bytes, not a multiple of {size} ({dtype}).");
        return DTypes.FromBytes(bytes, dtype, [bytes.Length / size]);
    }

    static Tensor View(Tensor storage, TensorRecord t, string path, string key)
    {
        if (t.Size.Length != t.Stride.Length || t.Size.Any(s => s < 0) || t.Stride.Any(s => s < 0) || t.Offset < 0)
            throw new InvalidDataException($"{path}: tensor '{key}' has malformed size/stride/offset.");
        long last = t.Offset + t.Size.Zip(t.Stride, (s, st) => s == 0 ? 0 : (s - 1) * st).Sum();
        bool empty = t.Size.Any(s => s == 0);
        if (!empty && last >= storage.shape[0])
            throw new InvalidDataException($"{path}: tensor '{key}' reaches element {last} of a storage with {storage.shape[0]} elements.");
        return storage.as_strided(t.Size, t.Stride, t.Offset);
    }
}
