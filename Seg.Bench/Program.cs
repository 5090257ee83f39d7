using BenchmarkDotNet.Running;
using Seg.Core;
using Seg.Core.Native;

HeapTuning.Apply();   // as Seg.Train does: keep freed heap memory for the next step
SegRuntime.Initialize();
if (SegRuntime.Note is { } note) Console.Error.WriteLine("note: " + note);
if (args is ["softmax-family", .. var experimentArgs])
{
    Seg.Bench.SoftmaxFamily.SoftmaxFamilyExperiment.Run(experimentArgs);
    return 0;
}
if (args is ["loss-step", .. var lossArgs])
    return Seg.Bench.LossStepComparison.Run(lossArgs);
if (args is ["train-step", .. var stepArgs])
    return Seg.Bench.TrainStepComparison.Run(stepArgs);
if (args is ["recipes", .. var recipeArgs])
    return Seg.Train.Cli.SegCli.Guard(() => Seg.Bench.Recipes.RecipeComparison.Run(recipeArgs));
if (args is ["threads", .. var threadArgs])
    return Seg.Bench.ThreadChoiceBench.Run(threadArgs);
if (args is ["threads-child", .. var childArgs])
    return Seg.Bench.ThreadChoiceBench.RunChild(childArgs);
if (args is ["model-table", .. var tableNames])
    return Seg.Bench.ModelTable.Run(tableNames);
if (args is ["sync-check"])
    return Seg.Bench.SyncCheck.Run();
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
