using Seg.Core;
using Seg.Core.Native;
using TorchSharp;

namespace Seg.Tests;

public class RuntimeTests
{
    [Fact]
    public void TorchSharpLoadsAndComputes()
    {
        SegRuntime.Initialize();
        SegRuntime.Initialize(); // idempotent
        using var a = torch.arange(6, dtype: torch.float64).reshape(2, 3);
        Assert.Equal(15.0, a.sum().item<double>());
    }
}
