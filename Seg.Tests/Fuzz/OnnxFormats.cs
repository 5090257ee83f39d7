using System.Buffers.Binary;
using System.Security.Cryptography;
using Google.Protobuf;
using OpenCvSharp;
using Seg.Models.Export.Proto;
using Seg.Onnx;
using Seg.Onnx.Imaging;
using Seg.Tests.Export;
using Keys = Seg.Onnx.OnnxModelMetadata.Keys;

namespace Seg.Tests.Fuzz;

/// <summary>
/// ONNX files through <see cref="OnnxSegmenter.Load"/> and one prediction: a 1x1-convolution model with every Seg
/// metadata key, without and with <c>graph_sha256</c> (mutations of the first reach ONNX Runtime; of the second, the
/// hash check). Structured mutations put hostile values under Seg's keys and pile up metadata entries.
/// </summary>
public sealed class OnnxFileFormat : IFuzzFormat
{
    public string Name => "onnx";
    public string FileName => "case.onnx";

    static readonly Dictionary<string, string> Metadata = new()
    {
        [Keys.ClassNames] = """["a","b","c"]""",
        [Keys.Palette] = "[[0,0,0],[255,0,0],[0,255,0]]",
        [Keys.NormalizationMean] = "[0.485,0.456,0.406]",
        [Keys.NormalizationStd] = "[0.229,0.224,0.225]",
        [Keys.EvalMode] = "slide",
        [Keys.EvalWindow] = "[8,8]",
        [Keys.EvalStride] = "[5,6]",
        [Keys.EvalFlip] = "true",
    };

    static byte[] Model(bool hashed)
    {
        var graph = new GraphProto { Name = "tiny" };
        graph.Input.Add(TinyOnnx.Image());
        graph.Node.Add(TinyOnnx.Node("Conv", ["images", "w"], "logits"));
        graph.Output.Add(TinyOnnx.Logits(3));
        graph.Initializer.Add(TinyOnnx.Constant("w", [3, 3, 1, 1], [1, -1, 0.5f, 0.25f, 2, -0.5f, -1, 0, 1]));
        var model = new ModelProto { IrVersion = 8, ProducerName = "Seg.Tests", Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        foreach (var (key, value) in Metadata) model.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
        if (hashed)
            model.MetadataProps.Add(new StringStringEntryProto { Key = Keys.GraphSha256, Value = Convert.ToHexStringLower(SHA256.HashData(graph.ToByteArray())) });
        return model.ToByteArray();
    }

    public IReadOnlyList<FuzzSeed> Seeds() =>
        [new("conv.onnx", Model(false), Varints(Model(false))), new("conv-hashed.onnx", Model(true), Varints(Model(true)))];

    /// <summary>The length of every length-delimited field, top level and one level down (graph parts, metadata entries).</summary>
    static List<LengthField> Varints(byte[] b)
    {
        var fields = new List<LengthField>();
        void Walk(int start, int end, int depth)
        {
            int pos = start;
            while (pos < end)
            {
                ulong tag = Read(b, ref pos);
                switch ((int)(tag & 7))
                {
                    case 0: Read(b, ref pos); break;
                    case 1: pos += 8; break;
                    case 5: pos += 4; break;
                    case 2:
                        fields.Add(new(pos, 0, false, $"field{tag >> 3}-length"));
                        int length = (int)Read(b, ref pos);
                        if (depth == 0) Walk(pos, pos + length, 1);
                        pos += length;
                        break;
                    default: return; // a field of a nested message that is not a message (bytes, strings): stop here
                }
            }
        }
        Walk(0, b.Length, 0);
        return fields;
    }

    static ulong Read(byte[] b, ref int pos)
    {
        ulong v = 0;
        for (int shift = 0; pos < b.Length; shift += 7)
        {
            byte x = b[pos++];
            v |= (ulong)(x & 0x7F) << shift;
            if (x < 0x80) break;
        }
        return v;
    }

    public string Read(string path)
    {
        using var segmenter = OnnxSegmenter.Load(path, new OnnxSegmenterOptions { Threads = 1, MaxImageBytes = 64 << 20 });
        using var image = new Mat(13, 11, MatType.CV_8UC3, new Scalar(30, 140, 220));
        using var labels = segmenter.Predict(image);
        return $"{segmenter.NumClasses}:{labels.Cols}x{labels.Rows}:{Png.Digest(labels)}";
    }

    /// <summary>ONNX Runtime's run errors (named <see cref="InvalidOperationException"/>s) and settings the file cannot
    /// serve (named <see cref="ArgumentException"/>s: a static size against the sliding window).</summary>
    public IReadOnlyList<Type> RefusalTypes => [typeof(InvalidOperationException), typeof(ArgumentException)];

    static readonly string[] HostileValues =
    [
        "null", "[]", "{}", "\"x\"", "[null]", "[[1,2,3],null]", "[1e309,1,1]", "[1e-320,1,1]", "[-1,5]", "[0,0]",
        "[2147483647,2147483647]", "[1,2147483648]", "[NaN,1,1]", "[\"a\",1]", new string('[', 5000), "true",
        "0000000000000000000000000000000000000000000000000000000000000000",
    ];

    public IEnumerable<FuzzCase> Structured(Random rng, int count)
    {
        var keys = Keys.All.Order(StringComparer.Ordinal).ToArray();
        for (int n = 0; n < count; n++)
        {
            var model = ModelProto.Parser.ParseFrom(Model(rng.Next(2) == 1));
            var key = keys[rng.Next(keys.Length)];
            var value = HostileValues[rng.Next(HostileValues.Length)];
            if (model.MetadataProps.FirstOrDefault(p => p.Key == key) is { } existing) model.MetadataProps.Remove(existing);
            model.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
            yield return new($"structured/{key}={(value.Length > 12 ? value[..12] : value)}/{n}", model.ToByteArray());
        }
    }

    public IEnumerable<FuzzCase> Crafted()
    {
        ModelProto With(Action<ModelProto> edit)
        {
            var model = ModelProto.Parser.ParseFrom(Model(false));
            edit(model);
            return model;
        }
        // 50k metadata entries: quadratic in ONNX Runtime's managed accessor (more than 120 s before).
        yield return new("metadata-50k", With(m => m.MetadataProps.AddRange(Enumerable.Range(0, 50_000)
            .Select(i => new StringStringEntryProto { Key = $"k{i}", Value = "v" }))).ToByteArray());
        yield return new("class-names-7", With(m => m.MetadataProps.Single(p => p.Key == Keys.ClassNames).Value = """["a","b","c","d","e","f","g"]""").ToByteArray());
        yield return new("window-2^30", With(m => m.MetadataProps.Single(p => p.Key == Keys.EvalWindow).Value = "[1073741824,1073741824]").ToByteArray());
        yield return new("stride-beyond-window", With(m => m.MetadataProps.Single(p => p.Key == Keys.EvalStride).Value = "[9,9]").ToByteArray());
        yield return new("second-input", With(m => m.Graph.Input.Add(TinyOnnx.Image("extra"))).ToByteArray());
        yield return new("hash-of-another-graph", With(m => m.MetadataProps.Add(new StringStringEntryProto { Key = Keys.GraphSha256, Value = new string('a', 64) })).ToByteArray());
        yield return new("metadata-entry-2^31", [0x72, 0x80, 0x80, 0x80, 0x80, 0x08]); // field 14, length 2^31, nothing behind
        // An entry of 2 bytes whose value length, a 10-byte varint of 2^63, runs past the entry (found by this family:
        // the length was compared with a negative remainder, then a byte[2^63] was asked for).
        yield return new("entry-length-overruns-entry", [0x72, 0x02, 0x12, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
        yield return new("varint-11-bytes", [0x08, 0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]);
        yield return new("group-wire-type", [0x0B, 0x0C]);
        yield return new("empty", []);
    }
}

/// <summary>
/// Image headers through <see cref="ImageFiles.Read"/> (the reader behind the datasets, <c>predict</c> and
/// <see cref="OnnxSegmenter.ReadImage"/>): small images of each format OpenCV writes, with their declared sizes,
/// bit depths and chunk lengths as the length fields to edit, and the bombs and foreign formats of issue 20.
/// </summary>
public sealed class ImageHeaderFormat : IFuzzFormat
{
    public string Name => "image-header";
    public string FileName => "case.img"; // formats are told by content

    public IReadOnlyList<FuzzSeed> Seeds()
    {
        using var image = new Mat(16, 24, MatType.CV_8UC3);
        Cv2.Randu(image, new Scalar(0, 0, 0), new Scalar(255, 255, 255));
        byte[] Encode(string ext, params int[] flags) => image.ImEncode(ext, flags);
        var png = Encode(".png");
        var jpeg = Encode(".jpg", (int)ImwriteFlags.JpegProgressive, 1);
        var bmp = Encode(".bmp");
        var tiff = Encode(".tif");
        var lossy = Encode(".webp", (int)ImwriteFlags.WebPQuality, 80);
        var lossless = Encode(".webp", (int)ImwriteFlags.WebPQuality, 101);
        return
        [
            new("png", png, [new(16, 4, true, "width"), new(20, 4, true, "height"), new(24, 1, false, "depth"), new(25, 1, false, "colour")]),
            new("jpeg-progressive", jpeg, Sof(jpeg)),
            new("bmp", bmp, [new(14, 4, false, "infosize"), new(18, 4, false, "width"), new(22, 4, false, "height"), new(28, 2, false, "bpp")]),
            new("tiff", tiff, Ifd(tiff)),
            new("webp-vp8", lossy, [new(4, 4, false, "riff-size"), new(16, 4, false, "chunk-size"), new(26, 2, false, "width"), new(28, 2, false, "height")]),
            new("webp-vp8l", lossless, [new(4, 4, false, "riff-size"), new(16, 4, false, "chunk-size"), new(21, 4, false, "size-bits")]),
        ];
    }

    // The frame header's height and width, and the segment lengths before it.
    static List<LengthField> Sof(byte[] b)
    {
        var fields = new List<LengthField>();
        for (int pos = 2; pos + 4 <= b.Length && b[pos] == 0xFF;)
        {
            int marker = b[pos + 1];
            fields.Add(new(pos + 2, 2, true, $"segment-{marker:X2}-length"));
            if (marker is >= 0xC0 and <= 0xCF and not 0xC4 and not 0xC8 and not 0xCC)
            {
                fields.Add(new(pos + 5, 2, true, "height"));
                fields.Add(new(pos + 7, 2, true, "width"));
                fields.Add(new(pos + 9, 1, false, "components"));
                break;
            }
            pos += 2 + BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(pos + 2));
        }
        return fields;
    }

    // The IFD offset and count, and the value of every entry of the first directory (little-endian, as OpenCV writes).
    static List<LengthField> Ifd(byte[] b)
    {
        int ifd = (int)BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(4));
        var fields = new List<LengthField> { new(4, 4, false, "ifd-offset"), new(ifd, 2, false, "entries") };
        int count = BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(ifd));
        for (int i = 0; i < count; i++)
        {
            int e = ifd + 2 + 12 * i, tag = BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(e)), type = BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(e + 2));
            fields.Add(new(e + 4, 4, false, $"tag{tag}-count"));
            fields.Add(new(e + 8, type == 3 ? 2 : 4, false, $"tag{tag}-value"));
        }
        return fields;
    }

    public string Read(string path)
    {
        using var image = ImageFiles.Read(path, ImreadModes.Color, 12, ImageFiles.DefaultMaxBytes, "the test's budget");
        return $"{image.Cols}x{image.Rows}:{Png.Digest(image)}";
    }

    public IEnumerable<FuzzCase> Crafted() =>
        Data.ImageFileHeaderTests.BombCases().Select(c => new FuzzCase(c.Id, c.Bytes))
            .Concat(Data.ImageFileHeaderTests.NotImageCases().Select(c => new FuzzCase(c.Id, c.Bytes)));
}
