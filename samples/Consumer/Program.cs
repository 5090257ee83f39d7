using Seg.Core;
using TorchSharp;

// What a library user writes: make TorchSharp loadable first, then use it.
SegRuntime.Initialize();
using var x = torch.linspace(0, 1, 5, dtype: torch.float64);
Console.WriteLine($"consumer ok {x.sum().item<double>():F2}");
