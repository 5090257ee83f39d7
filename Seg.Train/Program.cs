using Seg.Core;

SegRuntime.Initialize();
Console.WriteLine("Seg.Train: not implemented yet");
return 1;
