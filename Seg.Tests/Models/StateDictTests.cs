using System.Text;
using System.Text.Json;
using Seg.Models;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Seg.Tests.Models;

public class StateDictTests
{
    public StateDictTests() => Seg.Core.SegRuntime.Initialize();

    static readonly Dictionary<string, ScalarType> DtypeNames = new()
    {
        ["float32"] = ScalarType.Float32, ["float16"] = ScalarType.Float16, ["float64"] = ScalarType.Float64,
        ["int64"] = ScalarType.Int64, ["bfloat16"] = ScalarType.BFloat16,
    };

    static void AssertMatches(ModelFixtures.Expected expected, Tensor actual, string key)
    {
        Assert.True(DtypeNames[expected.Dtype] == actual.dtype, $"{key}: dtype {actual.dtype}, PyTorch {expected.Dtype}");
        Assert.Equal(expected.Shape, actual.shape);
        if (actual.dtype == ScalarType.Int64)
            Assert.Equal(expected.Values.Select(v => (long)v), actual.contiguous().data<long>().ToArray()); // 2^40+1 exactly
        else
            Assert.Equal(expected.Values, ModelFixtures.Values(actual)); // bit-exact: the file holds these very numbers
    }

    [Theory]
    [InlineData("tensors.pth", new[] { "f32", "f16", "f64", "i64", "scalar", "transposed", "shared_a", "shared_b" })]
    [InlineData("tensors.safetensors", new[] { "f32", "f16", "i64", "transposed", "bf16" })]
    public void ReadsWhatPyTorchWrote(string file, string[] keys)
    {
        var expected = ModelFixtures.ExpectedTensors();
        var tensors = StateDict.Read(ModelFixtures.Path(file));
        Assert.Equal(keys.Order(), tensors.Keys.Order());
        foreach (var key in keys) AssertMatches(expected[key], tensors[key], key);
        foreach (var t in tensors.Values) t.Dispose();
    }

    [Fact]
    public void ViewsOfOneStorageShareMemoryAsInPyTorch()
    {
        var tensors = StateDict.Read(ModelFixtures.Path("tensors.pth"));
        // shared_a = base[2:8].view(2,3), shared_b = base.view(3,4)[:, 1::2]: base element 3 is a[0,1] and b[0,1].
        Assert.Equal([1L, 4], tensors["transposed"].stride()); // torch.randn(3, 4).t(), strides kept
        tensors["shared_a"][0, 1] = tensor(100f);
        Assert.Equal(100f, tensors["shared_b"][0, 1].item<float>());
        foreach (var t in tensors.Values) t.Dispose();
    }

    [Fact]
    public void RefusesPickledCodeWithoutRunningIt()
    {
        var path = ModelFixtures.Path("evil.pth");
        var e = Assert.Throws<InvalidDataException>(() => StateDict.Read(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("posix.system", e.Message);
    }

    [Fact]
    public void UnwrapsACheckpointDict()
    {
        var tensors = StateDict.Read(ModelFixtures.Path("checkpoint.pth"));
        Assert.Equal(["0.bias", "0.weight", "1.bias", "1.num_batches_tracked", "1.running_mean", "1.running_var", "1.weight"], tensors.Keys.Order());
    }

    static Sequential SmallSeq(long outChannels = 4) => Sequential(Conv2d(3, outChannels, 3), BatchNorm2d(outChannels));

    [Fact]
    public void LoadedModuleReproducesPyTorchsOutput()
    {
        using var seq = SmallSeq();
        var report = StateDict.LoadInto(seq, ModelFixtures.Path("small_seq.pth"));
        Assert.True(report.IsExact);
        Assert.Equal(7, report.Loaded.Count);
        using var doc = JsonDocument.Parse(File.ReadAllText(ModelFixtures.Path("small_seq_expected.json")));
        var input = ModelFixtures.Describe(doc.RootElement.GetProperty("input"));
        var output = ModelFixtures.Describe(doc.RootElement.GetProperty("output"));
        seq.eval();
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var x = tensor(input.Values.Select(v => (float)v).ToArray()).reshape(input.Shape);
        var y = seq.forward(x);
        Assert.Equal(output.Shape, y.shape);
        var actual = ModelFixtures.Values(y);
        for (int i = 0; i < actual.Length; i++) Assert.Equal(output.Values[i], actual[i], 1e-5);
        Assert.Equal(17L, seq.state_dict()["1.num_batches_tracked"].item<long>());
    }

    [Fact]
    public void StrictLoadNamesTheFileAndTheKeysAndLoadsNothing()
    {
        using var seq = SmallSeq(5);
        using var before = seq.state_dict()["1.running_var"].clone();
        var path = ModelFixtures.Path("small_seq.pth");
        var e = Assert.Throws<InvalidDataException>(() => StateDict.LoadInto(seq, path));
        Assert.Contains(path, e.Message);
        Assert.Contains("0.weight", e.Message);
        Assert.Contains("[4, 3, 3, 3]", e.Message);
        Assert.True(seq.state_dict()["1.running_var"].Equals(before));
    }

    [Fact]
    public void NonStrictLoadTakesTheIntersectionAndReportsTheRest()
    {
        // The classifier-swap case: same layout, another output count.
        using var seq = Sequential(Conv2d(3, 4, 3), BatchNorm2d(4), Conv2d(4, 2, 1));
        using (no_grad()) ((Conv2d)seq[0]).weight!.zero_();
        var report = StateDict.LoadInto(seq, ModelFixtures.Path("small_seq.pth"), strict: false);
        Assert.Equal(["2.bias", "2.weight"], report.Missing.Order());
        Assert.Empty(report.Unexpected);
        Assert.Equal(7, report.Loaded.Count);
        Assert.False(report.IsExact);
        Assert.NotEqual(0f, ((Conv2d)seq[0]).weight!.abs().sum().item<float>());

        using var wider = SmallSeq(5);
        var r2 = StateDict.LoadInto(wider, ModelFixtures.Path("small_seq.pth"), strict: false);
        Assert.Equal(["0.bias", "0.weight", "1.bias", "1.running_mean", "1.running_var", "1.weight"], r2.ShapeMismatched.Select(m => m.Key).Order());
        Assert.Equal(["1.num_batches_tracked"], r2.Loaded);

        using var shorter = Sequential(Conv2d(3, 4, 3));
        var r3 = StateDict.LoadInto(shorter, ModelFixtures.Path("small_seq.pth"), strict: false);
        Assert.Equal(["1.bias", "1.num_batches_tracked", "1.running_mean", "1.running_var", "1.weight"], r3.Unexpected.Order());
    }

    sealed class Holder : Module
    {
        public Holder(ScalarType dtype) : base(nameof(Holder))
        {
            register_buffer("f16", zeros(4, dtype: dtype));
            register_buffer("i64", zeros(3, dtype: dtype));
        }
    }

    [Fact]
    public void FloatDtypesConvertButIntegerIntoFloatIsAMismatch()
    {
        var expected = ModelFixtures.ExpectedTensors();
        using var holder = new Holder(ScalarType.Float32);
        var report = StateDict.LoadInto(holder, ModelFixtures.Path("tensors.safetensors"), strict: false);
        Assert.Equal(["f16"], report.Loaded);
        Assert.Equal(["i64"], report.DtypeMismatched.Select(m => m.Key));
        Assert.Equal(expected["f16"].Values, ModelFixtures.Values(holder.named_buffers().Single(b => b.name == "f16").buffer));
    }

    [Fact]
    public void ReadsTorchSharpsOwnFormat()
    {
        var path = System.IO.Path.GetTempFileName();
        try
        {
            using var a = SmallSeq();
            a.save(path);
            var tensors = StateDict.Read(path);
            var original = a.state_dict();
            Assert.Equal(original.Keys.Order(), tensors.Keys.Order());
            foreach (var (k, v) in original) Assert.True(v.Equals(tensors[k]), k);
            using var b = SmallSeq();
            Assert.True(StateDict.LoadInto(b, path).IsExact);
            Assert.True(b.state_dict()["0.weight"].Equals(original["0.weight"]));
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void LoadBackboneFillsTheEncoderFromAClassifierFileInOneCall()
    {
        var path = System.IO.Path.GetTempFileName();
        try
        {
            using (var resnet = ModelFactory.Create("resnet34", 1000)) resnet.save(path);
            var file = StateDict.Read(path);
            using var model = ModelFactory.Create("unet_resnet34", 3);
            var report = StateDict.LoadBackbone(model, path);
            Assert.Equal(["encoder.fc.bias", "encoder.fc.weight"], report.Unexpected.Order()); // file keys after prefix mapping
            Assert.All(report.Missing, k => Assert.False(k.StartsWith("encoder."), k));
            Assert.Contains("classifier.weight", report.Missing);
            var sd = model.state_dict();
            Assert.True(sd["encoder.layer4.2.conv2.weight"].Equals(file["layer4.2.conv2.weight"]));
            Assert.True(sd["encoder.bn1.running_var"].Equals(file["bn1.running_var"]));
            foreach (var t in file.Values) t.Dispose();

            // A backbone file that does not fit (resnet34 weights into a resnet50 backbone) is an error naming file and key.
            using var deeplab = ModelFactory.Create("deeplabv3_resnet50", 3);
            var e = Assert.Throws<InvalidDataException>(() => StateDict.LoadBackbone(deeplab, path));
            Assert.Contains(path, e.Message);
            Assert.Contains("backbone.layer1.0.conv1.weight", e.Message);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void MalformedFilesAreRefusedWithTheFileAndKeyNamed()
    {
        var path = System.IO.Path.GetTempFileName() + ".safetensors";
        try
        {
            var header = Encoding.UTF8.GetBytes("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}");
            File.WriteAllBytes(path, [.. BitConverter.GetBytes((ulong)header.Length), .. header, .. new byte[12]]);
            var e = Assert.Throws<InvalidDataException>(() => StateDict.Read(path));
            Assert.Contains(path, e.Message);
            Assert.Contains("'w'", e.Message);

            File.WriteAllBytes(path, Encoding.ASCII.GetBytes("garbage that is no weight file"));
            var e2 = Assert.Throws<InvalidDataException>(() => StateDict.Read(path));
            Assert.Contains(path, e2.Message);

            Assert.Throws<FileNotFoundException>(() => StateDict.Read(path + ".absent"));
        }
        finally { File.Delete(path); }
    }
}
