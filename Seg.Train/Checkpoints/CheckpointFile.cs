using Seg.Core.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Train.Checkpoints;

/// <summary>
/// Reads and writes <c>.ckpt</c> files (<see cref="CheckpointFormat"/>): a JSON header (<see cref="CheckpointState"/>),
/// the model's tensors, the optimizer's state, the loss's state, and a SHA-256 over all of it.
/// Writes are atomic (temporary file, flush to disk, rename over the target), so that a kill or a full disk at any
/// moment leaves the previous file or the new one, never a torn one. Reads treat the file as hostile: the hash,
/// every length, dtype and shape, the header's fields and the RNG state are checked in C#, and the model, optimizer
/// and loss are touched only once all of it has passed.
/// </summary>
public static class CheckpointFile
{
    /// <summary>
    /// Writes model, optional optimizer (SGD or AdamW), optional loss state (e.g. center-loss centers) and header to
    /// <paramref name="path"/> atomically.
    /// </summary>
    /// <exception cref="IOException">The write failed (e.g. the disk is full); the previous file at
    /// <paramref name="path"/>, if any, is intact and no temporary file is left.</exception>
    public static void Save(string path, CheckpointState state, nn.Module model, optim.Optimizer? optimizer, nn.Module? lossState = null)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("checkpoints are little-endian; this host is not");
        var full = Path.GetFullPath(path);
        var snapshot = optimizer is null ? default : OptimizerSnapshot.Capture(optimizer);
        try
        {
            AtomicFile.Write(full, stream =>
            {
                using var writer = new CheckpointWriter(stream);
                writer.Magic();
                writer.Json(state);
                writer.Table(Named(model));
                writer.U8(optimizer is null ? (byte)0 : (byte)1);
                if (optimizer is not null)
                {
                    writer.Json(snapshot.Meta);
                    writer.Table(snapshot.Tensors);
                }
                writer.U8(lossState is null ? (byte)0 : (byte)1);
                if (lossState is not null) writer.Table(Named(lossState));
                writer.Finish();
            });
        }
        catch (IOException e)
        {
            var kept = File.Exists(full) ? $"the previous {Path.GetFileName(full)} is intact" : "no checkpoint was written";
            throw new IOException(IsDiskFull(e)
                ? $"cannot save {full}: no space left on device; {kept} and no partial file is left. Free some space, then resume."
                : $"cannot save {full}: {e.Message}; {kept}.", e);
        }
    }

    /// <summary>Reads the header, after checking the whole file.</summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="InvalidDataException">The file is not a Seg checkpoint, is damaged or malformed; the message names it.</exception>
    public static CheckpointState ReadState(string path)
    {
        using var file = CheckpointReader.Open(path);
        return file.State;
    }

    /// <summary>
    /// Loads the model's tensors (strict: names, dtypes and shapes must match) and, when given, the optimizer state
    /// and the loss state. Returns the header. Nothing is changed unless the whole file fits.
    /// </summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="InvalidDataException">The file is damaged or malformed, or does not fit the model, optimizer or loss.</exception>
    public static CheckpointState Load(string path, nn.Module model, optim.Optimizer? optimizer = null, nn.Module? lossState = null)
    {
        using var file = CheckpointReader.Open(path);
        var modelTensors = model.state_dict();
        CheckFits(file, file.Model, modelTensors, "the model's weights do not fit this model");
        if (optimizer is not null)
        {
            if (file.OptimizerMeta is null) throw file.Bad("holds no optimizer state, so training cannot resume from it.");
            OptimizerSnapshot.Check(file.OptimizerMeta, file.OptimizerTensors, optimizer, p => file.Bad(p));
        }
        var lossTensors = lossState is not null && file.LossState is not null ? lossState.state_dict() : null;
        if (lossTensors is not null) CheckFits(file, file.LossState!, lossTensors, "the loss state does not fit this loss");

        using (no_grad())
        {
            Copy(file, file.Model, modelTensors);
            if (lossTensors is not null) Copy(file, file.LossState!, lossTensors);
        }
        if (optimizer is not null) OptimizerSnapshot.Restore(file.OptimizerMeta!, file.OptimizerTensors, optimizer, file.ReadTensor);
        return file.State;
    }

    /// <summary>
    /// Whether <paramref name="path"/> is an intact checkpoint that training can resume from (it holds optimizer
    /// state), with its header; false with the reason otherwise.
    /// </summary>
    public static bool CanResumeFrom(string path, out CheckpointState? state, out string reason)
    {
        state = null;
        try
        {
            using var file = CheckpointReader.Open(path);
            state = file.State;
            reason = file.OptimizerMeta is null ? "it holds weights only, no optimizer state" : "";
            return file.OptimizerMeta is not null;
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            reason = e.Message;
            return false;
        }
    }

    /// <summary>
    /// Deletes temporary files that a save interrupted by a crash or a kill left in <paramref name="directory"/>;
    /// call it only while holding the run's lock. Returns their names.
    /// </summary>
    public static IReadOnlyList<string> RemoveTemporaries(string directory) => AtomicFile.RemoveTemporaries(directory, "*.ckpt");

    /// <summary>The CPU generator's state as bytes.</summary>
    public static byte[] CaptureRng()
    {
        using var state = random.get_rng_state();
        return state.data<byte>().ToArray();
    }

    /// <summary>Restores the CPU generator from <see cref="CaptureRng"/> bytes, after checking them (libtorch aborts the
    /// process on a state it cannot take).</summary>
    /// <exception cref="InvalidDataException">Bytes that are not a CPU generator state.</exception>
    public static void RestoreRng(byte[] bytes)
    {
        if (CpuRngState.Problem(bytes) is { } problem) throw new InvalidDataException($"cannot restore the RNG: {problem}");
        using var state = tensor(bytes, ScalarType.Byte);
        random.set_rng_state(state);
    }

    static List<(string, Tensor)> Named(nn.Module module) => module.state_dict().Select(kv => (kv.Key, kv.Value)).ToList();

    // Strict: the same names, each with the same dtype and shape (repeated names were refused when reading).
    static void CheckFits(CheckpointReader file, IReadOnlyList<TensorRecord> records, Dictionary<string, Tensor> targets, string context)
    {
        foreach (var record in records)
        {
            if (!targets.TryGetValue(record.Name, out var target))
                throw file.Bad($"{context}: tensor '{record.Name}' is not in it");
            if (record.DType != target.dtype || !record.Shape.SequenceEqual(target.shape))
                throw file.Bad($"{context}: tensor {record} is {CheckpointFormat.Describe(target.dtype, target.shape)} here");
        }
        if (records.Count != targets.Count)
        {
            var missing = targets.Keys.Except(records.Select(r => r.Name)).ToList();
            throw file.Bad($"{context}: {missing.Count} tensor(s) missing from the checkpoint, e.g. '{missing[0]}'");
        }
    }

    static void Copy(CheckpointReader file, IReadOnlyList<TensorRecord> records, Dictionary<string, Tensor> targets)
    {
        foreach (var record in records)
        {
            using var host = file.ReadTensor(record);
            targets[record.Name].copy_(host);
        }
    }

    static bool IsDiskFull(IOException e) =>
        e.HResult is 28 /* ENOSPC */ or 122 /* EDQUOT */ or unchecked((int)0x80070070) /* ERROR_DISK_FULL */ or unchecked((int)0x80070027) /* ERROR_HANDLE_DISK_FULL */;
}
