using Seg.Core;
using Seg.Core.Distributed;
using Seg.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Seg.Tests.Distributed;

/// <summary>The pieces of data-parallel training that need no second process.</summary>
public class DistributedUnitTests
{
    public DistributedUnitTests() => SegRuntime.Initialize();

    static Dictionary<string, string> Env(params (string, string)[] vars) => vars.ToDictionary(v => v.Item1, v => v.Item2);

    [Fact]
    public void No_launcher_variable_means_no_launch_and_a_one_process_group()
    {
        Assert.Null(Launcher.Detect(Env(("PATH", "/usr/bin"), ("OMPI_MCA_btl", "self"))));
        using var group = ProcessGroup.Initialize(Env());
        Assert.Equal((0, 1, false, true), (group.Rank, group.Size, group.IsDistributed, group.IsMain));
        float[] data = [1, 2];
        group.AllReduce<float>(data);
        Assert.Equal([1f, 2f], data);
    }

    [Fact]
    public void Each_launcher_family_is_read()
    {
        Assert.Equal(new LaunchInfo(1, 4, 1, "OMPI_COMM_WORLD_SIZE"),
            Launcher.Detect(Env(("OMPI_COMM_WORLD_SIZE", "4"), ("OMPI_COMM_WORLD_RANK", "1"), ("OMPI_COMM_WORLD_LOCAL_RANK", "1"))));
        Assert.Equal(new LaunchInfo(2, 0, 0, "PMIX_RANK"), Launcher.Detect(Env(("PMIX_RANK", "2"))));
        Assert.Equal(new LaunchInfo(3, 8, 1, "PMI_SIZE"), Launcher.Detect(Env(("PMI_SIZE", "8"), ("PMI_RANK", "3"), ("MPI_LOCALRANKID", "1"))));
    }

    [Theory]
    [InlineData("OMPI_COMM_WORLD_SIZE", "two", "OMPI_COMM_WORLD_RANK", "0", "not an integer")]
    [InlineData("OMPI_COMM_WORLD_SIZE", "2", "OMPI_COMM_WORLD_RANK", "2", "not in [0, 2)")]
    [InlineData("PMI_SIZE", "0", "PMI_RANK", "0", "size is missing or not positive")]
    public void A_bad_launcher_environment_is_named(string k1, string v1, string k2, string v2, string expected)
    {
        var e = Assert.Throws<DistributedException>(() => Launcher.Detect(Env((k1, v1), (k2, v2))));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void A_launcher_without_a_loadable_libmpi_stops_with_one_line_naming_library_and_package()
    {
        var e = Assert.Throws<DistributedException>(() => ProcessGroup.Initialize(Env(
            ("OMPI_COMM_WORLD_SIZE", "2"), ("OMPI_COMM_WORLD_RANK", "0"), (ProcessGroup.LibraryVariable, "libmpi-missing.so.40"))));
        Assert.Contains("libmpi-missing.so.40 cannot be loaded", e.Message);
        Assert.Contains("openmpi-bin", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    // Oracle: TorchSharp's BatchNorm2d. In a one-process group SyncBatchNorm must compute exactly what it does.
    [Fact]
    public void SyncBatchNorm_alone_matches_BatchNorm2d_forward_backward_and_running_statistics()
    {
        var gen = new Generator(5);
        var x = randn([6, 4, 3, 5], generator: gen) * 2 + 1;
        var g = randn([6, 4, 3, 5], generator: gen);
        var bn = nn.BatchNorm2d(4);
        using (no_grad()) { bn.weight.copy_(randn(4, generator: gen)); bn.bias!.copy_(randn(4, generator: gen)); }
        var holder = nn.Sequential(("bn", bn));
        var reference = nn.BatchNorm2d(4);
        reference.load_state_dict(bn.state_dict());
        Assert.Equal(1, SyncBatchNorm.convert_sync_batchnorm(holder, ProcessGroup.Single()));
        var sync = Assert.IsType<SyncBatchNorm>(holder.named_children().Single().module);
        holder.train();
        reference.train();
        for (var step = 0; step < 2; step++)
        {
            var (x1, x2) = (x.clone().requires_grad_(), x.clone().requires_grad_());
            var (y1, y2) = (reference.forward(x1), sync.forward(x2));
            (y1 * g).sum().backward();
            (y2 * g).sum().backward();
            MpiCollectiveTests.AssertClose(y1, y2, "output");
            MpiCollectiveTests.AssertClose(x1.grad!, x2.grad!, "input gradient");
            x = x * 0.5 + 3;
        }
        var (p1, p2) = (reference.parameters().ToList(), sync.parameters().ToList());
        for (var i = 0; i < p1.Count; i++) MpiCollectiveTests.AssertClose(p1[i].grad!, p2[i].grad!, $"gradient of parameter {i}");
        var (s1, s2) = (reference.state_dict(), holder.state_dict());
        MpiCollectiveTests.AssertClose(s1["running_mean"], s2["bn.running_mean"], "running mean");
        MpiCollectiveTests.AssertClose(s1["running_var"], s2["bn.running_var"], "running variance");
        Assert.Equal(2, s2["bn.num_batches_tracked"].ToInt64());
        reference.eval();
        holder.eval();
        using (no_grad()) MpiCollectiveTests.AssertClose(reference.forward(x), holder.forward(x), "eval output");
    }

    [Theory]
    [InlineData("unet")]
    [InlineData("unet_resnet34")]
    [InlineData("deeplabv3plus_resnet50")]
    public void Converting_a_model_replaces_every_BatchNorm2d_and_keeps_state_dict_names_order_and_outputs(string name)
    {
        manual_seed(1);
        using var model = ModelFactory.Create(name, 3, new ModelOptions { UnetDepth = 2, UnetBaseWidth = 4 });
        var keys = model.state_dict().Keys.ToList();
        var count = model.modules().OfType<BatchNorm2d>().Count();
        var x = randn(2, 3, 32, 32, generator: new Generator(2));
        model.eval();
        Tensor before;
        using (no_grad()) before = model.forward(x);

        Assert.Equal(count, SyncBatchNorm.convert_sync_batchnorm(model, ProcessGroup.Single()));
        Assert.Empty(model.modules().OfType<BatchNorm2d>());
        Assert.Equal(keys, model.state_dict().Keys.ToList());
        using (no_grad()) MpiCollectiveTests.AssertClose(before, model.forward(x), "eval output after conversion", 1e-5, 1e-6);
        model.train();
        var loss = model.forward(x).square().mean();
        loss.backward();
        Assert.All(model.parameters(), p => Assert.NotNull(p.grad));
    }
}
