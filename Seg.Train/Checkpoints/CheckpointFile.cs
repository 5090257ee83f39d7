using System.Text;
using System.Text.Json;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Seg.Train.Checkpoints;

/// <summary>
/// Reads and writes <c>.ckpt</c> files: a magic tag, a JSON header (<see cref="CheckpointState"/>), the model's
/// tensors (TorchSharp's module format) and the optimizer's state. Writes are atomic (temporary file, flush to
/// disk, rename over the target), so that a kill at any moment leaves the previous file or the new one, never a
/// torn one.
/// </summary>
public static class CheckpointFile
{
    const string Magic = "SEGCKPT1";
    static readonly JsonSerializerOptions Json = new() { WriteIndented = false };

    /// <summary>
    /// Writes model, optional optimizer, optional loss state (e.g. center-loss centers) and header to
    /// <paramref name="path"/> atomically.
    /// </summary>
    public static void Save(string path, CheckpointState state, nn.Module model, optim.Optimizer? optimizer, nn.Module? lossState = null)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(dir);
        var temp = Path.Combine(dir, $".{Path.GetFileName(path)}.{Environment.ProcessId}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                using (var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
                {
                    writer.Write(Magic);
                    writer.Write(JsonSerializer.Serialize(state, Json));
                    model.save(writer);
                    writer.Write(optimizer is not null);
                    if (optimizer is OptimizerHelper helper) helper.save_state_dict(writer);
                    else if (optimizer is not null)
                        throw new NotSupportedException($"cannot save the state of optimizer {optimizer.GetType().Name}.");
                    writer.Write(lossState is not null);
                    lossState?.save(writer);
                    writer.Flush();
                }
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    /// <summary>Reads only the header.</summary>
    /// <exception cref="InvalidDataException">The file is not a Seg checkpoint.</exception>
    public static CheckpointState ReadState(string path)
    {
        using var reader = Open(path);
        return ReadHeader(reader, path);
    }

    /// <summary>
    /// Loads the model's tensors (strict: names, dtypes and shapes must match) and, when
    /// <paramref name="optimizer"/> is given, the optimizer state. Returns the header.
    /// </summary>
    public static CheckpointState Load(string path, nn.Module model, optim.Optimizer? optimizer = null, nn.Module? lossState = null)
    {
        using var reader = Open(path);
        var state = ReadHeader(reader, path);
        try
        {
            model.load(reader, strict: true);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or EndOfStreamException)
        {
            throw new InvalidDataException($"{path}: the model's weights do not fit this model: {e.Message}", e);
        }
        var hasOptimizer = reader.ReadBoolean();
        if (optimizer is OptimizerHelper helper)
        {
            if (!hasOptimizer) throw new InvalidDataException($"{path}: holds no optimizer state, so training cannot resume from it.");
            helper.load_state_dict(reader);
            if (reader.ReadBoolean() && lossState is not null) lossState.load(reader, strict: true);
        }
        return state;
    }

    static BinaryReader Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"checkpoint not found: {path}", path);
        return new BinaryReader(File.OpenRead(path), Encoding.UTF8, leaveOpen: false);
    }

    static CheckpointState ReadHeader(BinaryReader reader, string path)
    {
        try
        {
            if (reader.ReadString() != Magic) throw new InvalidDataException("wrong magic");
            return JsonSerializer.Deserialize<CheckpointState>(reader.ReadString(), Json)
                ?? throw new InvalidDataException("empty header");
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or JsonException or IOException)
        {
            throw new InvalidDataException($"{path} is not a Seg checkpoint ({e.Message}).", e);
        }
    }

    /// <summary>The CPU generator's state as bytes.</summary>
    public static byte[] CaptureRng()
    {
        using var state = random.get_rng_state();
        return state.data<byte>().ToArray();
    }

    /// <summary>Restores the CPU generator from <see cref="CaptureRng"/> bytes.</summary>
    public static void RestoreRng(byte[] bytes)
    {
        using var state = tensor(bytes, ScalarType.Byte);
        random.set_rng_state(state);
    }
}
