using BenchmarkDotNet.Running;
using Seg.Core;

SegRuntime.Initialize();
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
