using BenchmarkDotNet.Running;
using Seg.Core;

SegRuntime.Initialize();
if (args is ["softmax-family", .. var experimentArgs])
{
    Seg.Bench.SoftmaxFamily.SoftmaxFamilyExperiment.Run(experimentArgs);
    return;
}
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
