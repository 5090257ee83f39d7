using Seg.Core;
using Seg.Core.Native;
using Seg.Train.Cli;

// Before libtorch allocates anything: keep freed heap memory for the next step (see HeapTuning).
HeapTuning.Apply();
// Native libraries that fail to load are reported like every other failure: one line naming the cause and the fix.
var status = SegCli.Guard(() => { SegRuntime.Initialize(); return 0; });
if (status == 0 && SegRuntime.Note is { } note) Console.Error.WriteLine("note: " + note);
return status != 0 ? status : SegCli.Run(args);
