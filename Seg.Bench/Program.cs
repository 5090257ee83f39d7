using BenchmarkDotNet.Running;
using Seg.Core;

SegRuntime.Initialize();
if (args is ["softmax-family", .. var experimentArgs])
{
    Seg.Bench.SoftmaxFamily.SoftmaxFamilyExperiment.Run(experimentArgs);
    return 0;
}
if (args is ["sync-check"])
    return Seg.Bench.SyncCheck.Run();
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
