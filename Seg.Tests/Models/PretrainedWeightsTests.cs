using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Seg.Models;
using static TorchSharp.torch;

namespace Seg.Tests.Models;

/// <summary>
/// Downloads with a hash check, served by a local HTTP server on 127.0.0.1 that the test starts (nothing leaves
/// the machine): the hash prefix in a torchvision-style name and a full SHA-256 are both enforced before the file
/// enters the cache, a mismatch leaves the cache empty, a cached file is re-hashed, an unreachable server gives one
/// line naming the URL and the cache path, SEG_WEIGHTS_URL replaces the base, and a downloaded file loads.
/// </summary>
[Collection("SEG_WEIGHTS_URL")]
public sealed class PretrainedWeightsTests : IDisposable
{
    readonly string cache = Directory.CreateTempSubdirectory("seg-weights-").FullName;
    readonly LocalServer server = new();
    readonly StringWriter progress = new();

    public void Dispose()
    {
        server.Dispose();
        Directory.Delete(cache, recursive: true);
    }

    static byte[] Bytes(int n, int seed) => Enumerable.Range(0, n).Select(i => (byte)(i * 31 + seed)).ToArray();
    static string Hash(byte[] b) => Convert.ToHexStringLower(SHA256.HashData(b));

    [Fact]
    public void NamePrefixIsCheckedAndTheCachedFileIsReused()
    {
        var body = Bytes(300_000, 1);
        var name = $"toy-{Hash(body)[..8]}.pth";
        server.Serve(name, body);
        var path = PretrainedWeights.Download(server.Url(name), cacheDirectory: cache, progress: progress);
        Assert.Equal(Path.Combine(cache, name), path);
        Assert.Equal(body, File.ReadAllBytes(path));
        Assert.Contains("100.0%", progress.ToString());
        Assert.Single(Directory.GetFiles(cache));

        Assert.Equal(path, PretrainedWeights.Download(server.Url(name), cacheDirectory: cache, progress: progress));
        Assert.Equal(1, server.Requests(name));
    }

    [Fact]
    public void PrefixMismatchIsRefusedAndLeavesNothing()
    {
        var body = Bytes(5000, 2);
        var name = "resnet34-b627a593.pth";           // torchvision's name, but other bytes
        server.Serve(name, body);
        var e = Assert.Throws<InvalidDataException>(() => PretrainedWeights.Download(server.Url(name), cacheDirectory: cache, progress: progress));
        Assert.Contains(server.Url(name).ToString(), e.Message);
        Assert.Contains("b627a593", e.Message);
        Assert.Contains(Hash(body), e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(cache));
    }

    [Fact]
    public void FullSha256IsCheckedWhenGiven()
    {
        var body = Bytes(7000, 3);
        server.Serve("any.bin", body);
        var wrong = new string('0', 64);
        var e = Assert.Throws<InvalidDataException>(() => PretrainedWeights.Download(server.Url("any.bin"), wrong, cacheDirectory: cache, progress: progress));
        Assert.Contains(wrong, e.Message);
        Assert.Contains(Hash(body), e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(cache));
        Assert.Equal(body, File.ReadAllBytes(PretrainedWeights.Download(server.Url("any.bin"), Hash(body).ToUpperInvariant(), cacheDirectory: cache, progress: progress)));
        Assert.Throws<ArgumentException>(() => PretrainedWeights.Download(server.Url("nohash.bin"), cacheDirectory: cache));
    }

    [Fact]
    public void CachedFileIsCheckedAgainBeforeUse()
    {
        var body = Bytes(4000, 4);
        var name = $"toy-{Hash(body)[..10]}.pth";
        server.Serve(name, body);
        var path = PretrainedWeights.Download(server.Url(name), cacheDirectory: cache, progress: progress);
        File.WriteAllBytes(path, Bytes(4000, 5));
        var e = Assert.Throws<InvalidDataException>(() => PretrainedWeights.Download(server.Url(name), cacheDirectory: cache, progress: progress));
        Assert.Contains(path, e.Message);
        Assert.Contains(Hash(body)[..10], e.Message);
    }

    [Fact]
    public void UnreachableServerNamesTheUrlAndWhereToPutTheFile()
    {
        int port = LocalServer.FreePort();          // nothing listens there
        var url = new Uri($"http://127.0.0.1:{port}/models/resnet18-f37072fd.pth");
        var e = Assert.Throws<IOException>(() => PretrainedWeights.Download(url, cacheDirectory: cache, progress: progress));
        Assert.DoesNotContain('\n', e.Message);
        Assert.Contains(url.ToString(), e.Message);
        Assert.Contains(Path.Combine(cache, "resnet18-f37072fd.pth"), e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(cache));

        var missing = Assert.Throws<IOException>(() => PretrainedWeights.Download(server.Url("absent-abcdef12.pth"), cacheDirectory: cache, progress: progress));
        Assert.Contains("404", missing.Message);
    }

    [Fact]
    public void SegWeightsUrlReplacesTheBaseAndSegHomeTheCache()
    {
        server.Serve("resnet18-f37072fd.pth", Bytes(1000, 6));
        var (oldUrl, oldHome) = (Environment.GetEnvironmentVariable("SEG_WEIGHTS_URL"), Environment.GetEnvironmentVariable("SEG_HOME"));
        try
        {
            Environment.SetEnvironmentVariable("SEG_WEIGHTS_URL", server.Url("").ToString());
            Environment.SetEnvironmentVariable("SEG_HOME", cache);
            Assert.Equal(Path.Combine(cache, "weights"), PretrainedWeights.CacheDirectory);
            // Not torchvision's bytes: the mismatch error proves which URL was asked and which hash was expected.
            var e = Assert.Throws<InvalidDataException>(() => PretrainedWeights.Resolve("unet_resnet18", new PretrainedSource { Kind = PretrainedWeights.ImageNet }, progress: progress));
            Assert.Contains(server.Url("resnet18-f37072fd.pth").ToString(), e.Message);
            Assert.Contains("f37072fd", e.Message);
            Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(cache, "weights")));
        }
        finally
        {
            Environment.SetEnvironmentVariable("SEG_WEIGHTS_URL", oldUrl);
            Environment.SetEnvironmentVariable("SEG_HOME", oldHome);
        }
    }

    [Fact]
    public void TableHoldsTorchvisionsNames()
    {
        Assert.Equal("resnet34-b627a593.pth", PretrainedWeights.TorchvisionFile("unet_resnet34", PretrainedWeights.ImageNet));
        Assert.Equal("mobilenet_v3_large-5c1a4163.pth", PretrainedWeights.TorchvisionFile("lraspp_mobilenet_v3_large", PretrainedWeights.ImageNet));
        Assert.Equal("deeplabv3_resnet50_coco-cd0a2569.pth", PretrainedWeights.TorchvisionFile("deeplabv3_resnet50", PretrainedWeights.CocoVoc));
        Assert.Null(PretrainedWeights.TorchvisionFile("fpn_resnet50", PretrainedWeights.CocoVoc));
        Assert.Null(PretrainedWeights.TorchvisionFile("unet", PretrainedWeights.ImageNet));
        foreach (var name in ModelFactory.Names.Where(n => n != "unet"))
            Assert.Contains(PretrainedWeights.ImageNet, PretrainedWeights.Available(name));
        var e = Assert.Throws<ArgumentException>(() => PretrainedWeights.Resolve("fpn_resnet50", new PretrainedSource { Kind = PretrainedWeights.CocoVoc }));
        Assert.Contains("fpn_resnet50", e.Message);
    }

    [Fact]
    public void DownloadedWeightsLoadIntoTheModel()
    {
        Seg.Core.SegRuntime.Initialize();
        using var source = ModelFactory.Create("mobilenet_v3_small", 10);
        PatternWeights.Fill(source);
        var file = Path.Combine(cache, "upload.dat");
        source.save(file);
        var body = File.ReadAllBytes(file);
        File.Delete(file);
        server.Serve("mnv3.dat", body);

        using var target = ModelFactory.Create("mobilenet_v3_small", 10);
        var spec = PretrainedSource.Parse(server.Url("mnv3.dat").ToString(), Hash(body));
        var report = PretrainedWeights.Load(target, "mobilenet_v3_small", spec, progress: progress);
        Assert.True(report.IsExact, report.ToString());
        var want = source.state_dict();
        foreach (var (key, t) in target.state_dict()) Assert.True(t.equal(want[key]).all().item<bool>(), key);

        // The same file as an encoder (imagenet-style backbone) of a U-Net: every encoder key loads, the classifier is left over.
        using var unet = ModelFactory.Create("unet_mobilenet_v3_small", 3);
        var backbone = StateDict.LoadBackbone(unet, PretrainedWeights.Resolve("x", spec, progress: progress));
        Assert.Contains("encoder.classifier.0.weight", backbone.Unexpected);
        Assert.True(unet.state_dict()["encoder.features.3.block.0.0.weight"].equal(want["features.3.block.0.0.weight"]).all().item<bool>());
    }

    /// <summary>An HttpListener on 127.0.0.1 serving in-memory files under /models/.</summary>
    sealed class LocalServer : IDisposable
    {
        readonly HttpListener listener = new();
        readonly Dictionary<string, byte[]> files = [];
        readonly Dictionary<string, int> requests = [];
        readonly int port = FreePort();
        readonly Task loop;

        public LocalServer()
        {
            listener.Prefixes.Add($"http://127.0.0.1:{port}/");
            listener.Start();
            loop = Task.Run(Serve);
        }

        public static int FreePort()
        {
            using var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            return ((IPEndPoint)probe.LocalEndpoint).Port;
        }

        public Uri Url(string name) => new($"http://127.0.0.1:{port}/models/{name}");

        public void Serve(string name, byte[] body) { lock (files) files[name] = body; }

        public int Requests(string name) { lock (files) return requests.GetValueOrDefault(name); }

        async Task Serve()
        {
            while (listener.IsListening)
            {
                HttpListenerContext context;
                try { context = await listener.GetContextAsync(); }
                catch (Exception) { return; }
                var name = context.Request.Url!.AbsolutePath.Split('/')[^1];
                byte[]? body;
                lock (files)
                {
                    requests[name] = requests.GetValueOrDefault(name) + 1;
                    body = files.GetValueOrDefault(name);
                }
                if (body is null) context.Response.StatusCode = 404;
                else
                {
                    context.Response.ContentLength64 = body.Length;
                    await context.Response.OutputStream.WriteAsync(body);
                }
                context.Response.Close();
            }
        }

        public void Dispose()
        {
            listener.Stop();
            listener.Close();
            try { loop.Wait(5000); } catch (AggregateException) { }
        }
    }
}
