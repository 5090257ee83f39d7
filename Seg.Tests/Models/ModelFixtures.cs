using System.IO.Compression;
using System.Text.Json;
using Seg.Core;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Tests.Models;

/// <summary>Paths and decoded contents of the files under Fixtures/models (written by make_fixtures.py with PyTorch).</summary>
internal static class ModelFixtures
{
    public static string Path(string name)
    {
        SegRuntime.Initialize();
        return System.IO.Path.Combine(AppContext.BaseDirectory, "Fixtures", "models", name);
    }

    public sealed record Expected(string Dtype, long[] Shape, double[] Values);

    public static Expected Describe(JsonElement e) => new(
        e.GetProperty("dtype").GetString()!,
        e.GetProperty("shape").EnumerateArray().Select(x => x.GetInt64()).ToArray(),
        e.GetProperty("values").EnumerateArray().Select(x => x.GetDouble()).ToArray());

    public static Dictionary<string, Expected> ExpectedTensors()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path("tensors_expected.json")));
        return doc.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => Describe(p.Value));
    }

    /// <summary>torchvision's state_dict entries per model: ordered (key, shape) pairs.</summary>
    public static Dictionary<string, List<(string Key, long[] Shape)>> TorchvisionKeys() => ReadKeys(Path("torchvision_keys.txt.gz"));

    /// <summary>A gzipped "model TAB key TAB shape" list (make_fixtures.py, make_zoo_fixtures.py) by model.</summary>
    public static Dictionary<string, List<(string Key, long[] Shape)>> ReadKeys(string file)
    {
        using var gz = new GZipStream(File.OpenRead(file), CompressionMode.Decompress);
        using var reader = new StreamReader(gz);
        var result = new Dictionary<string, List<(string, long[])>>();
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0) continue;
            var parts = line.Split('\t');
            long[] shape = parts[2].Length == 0 ? [] : parts[2].Split(',').Select(long.Parse).ToArray();
            if (!result.TryGetValue(parts[0], out var list)) result[parts[0]] = list = [];
            list.Add((parts[1], shape));
        }
        return result;
    }

    /// <summary>Asserts max|y − reference| ≤ 1e-4·max|reference| (any float dtype), writing the ratio to <paramref name="output"/>.</summary>
    public static void AssertClose(Xunit.Abstractions.ITestOutputHelper output, string what, Tensor y, Tensor reference)
    {
        Assert.Equal(reference.shape, y.shape);
        double maxRef = reference.abs().max().ToDouble();
        double maxRel = (y - reference).abs().max().ToDouble() / maxRef;
        output.WriteLine($"{what} ({y.dtype}): max|Δ|/max|ref| = {maxRel:E3} (max|ref| = {maxRef:G4})");
        Assert.True(maxRel <= 1e-4, $"{what}: max|Δ|/max|ref| = {maxRel}");
    }

    /// <summary>Tensor values in row-major logical order, as doubles (whatever the dtype or strides).</summary>
    public static double[] Values(Tensor t)
    {
        using var d = t.to_type(ScalarType.Float64).contiguous().cpu();
        return d.data<double>().ToArray();
    }
}
