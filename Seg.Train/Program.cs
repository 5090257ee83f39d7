using Seg.Core;
using Seg.Train.Cli;

SegRuntime.Initialize();
return SegCli.Run(args);
