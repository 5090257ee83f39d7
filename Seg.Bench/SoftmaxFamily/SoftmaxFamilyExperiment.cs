using System.Diagnostics;
using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;

namespace Seg.Bench.SoftmaxFamily;

/// <summary>
/// Fashion-MNIST classification with each softmax-family loss on the same small CNN: test accuracy per loss with a
/// 64-D embedding, and (optionally) a 2-D-embedding run per loss drawn as the classic center-loss scatter figure.
/// <code>
/// dotnet run -c Release --project Seg.Bench -- softmax-family [--epochs 2] [--dim 64] [--batch 128]
///     [--losses softmax,am-softmax,arcface,l-softmax,softmax+center] [--plot-epochs 1] [--plot-dir docs/images]
///     [--plot-train 20000] [--train 60000] [--data /usr/share/datasets/fashion-mnist] [--threads 2] [--seed 1]
/// </code>
/// Adam (lr 1e-3, cosine decay to 0 over the run), batch 128; the 2-D runs train on the first --plot-train images.
/// <code>
/// </code>
/// </summary>
public static class SoftmaxFamilyExperiment
{
    /// <summary>The <c>softmax-family</c> verb: trains and tests every loss chosen in <paramref name="args"/> and prints the table.</summary>
    public static void Run(string[] args)
    {
        var options = Options.Parse(args);
        torch.set_num_threads(options.Threads);
        Console.WriteLine($"softmax-family: Fashion-MNIST from {options.Data}, {options.Threads} threads, " +
                          $"{options.Epochs} epochs, batch {options.Batch}, embedding {options.Dim}-D");
        var (trainX, trainY) = FashionMnist.Load(options.Data, train: true);
        if (options.Train < trainX.shape[0]) (trainX, trainY) = (trainX.narrow(0, 0, options.Train), trainY.narrow(0, 0, options.Train));
        var plotCount = Math.Min(options.PlotTrain, trainX.shape[0]);
        var (plotX, plotY) = (trainX.narrow(0, 0, plotCount), trainY.narrow(0, 0, plotCount));
        var (testX, testY) = FashionMnist.Load(options.Data, train: false);

        var rows = new List<string>();
        foreach (var name in options.Epochs > 0 ? options.Losses : []) // --epochs 0: figures only
        {
            var result = Train(name, options.Dim, options.Epochs, options, trainX, trainY, testX, testY, keepEmbedding: false);
            rows.Add($"| {name} | {result.Settings} | {result.Accuracy * 100:F2} % | {result.SecondsPerEpoch:F0} s |");
            Console.WriteLine(rows[^1]);
        }
        Console.WriteLine();
        Console.WriteLine($"| loss | settings | test accuracy ({options.Dim}-D, {options.Epochs} epochs) | time per epoch |");
        Console.WriteLine("|---|---|---|---|");
        rows.ForEach(Console.WriteLine);

        if (options.PlotEpochs <= 0) return;
        Directory.CreateDirectory(options.PlotDir);
        foreach (var name in options.Losses)
        {
            var result = Train(name, 2, options.PlotEpochs, options, plotX, plotY, testX, testY, keepEmbedding: true);
            var file = Path.Combine(options.PlotDir, $"softmax-family-2d-{name.Replace('+', '-')}.png");
            EmbeddingPlot.Save(file, result.Embedding!, testY,
                $"{name} ({result.Settings}), 2-D embedding, test acc {result.Accuracy * 100:F1} %");
            Console.WriteLine($"2-D {name}: test accuracy {result.Accuracy * 100:F2} %, figure {file}");
        }
    }

    sealed record Result(string Settings, double Accuracy, double SecondsPerEpoch, Tensor? Embedding);

    static Result Train(string name, long dim, int epochs, Options options,
        Tensor trainX, Tensor trainY, Tensor testX, Tensor testY, bool keepEmbedding)
    {
        torch.manual_seed(options.Seed);
        using var net = new EmbeddingNet(dim);
        using var variant = LossVariant.Create(name, dim, FashionMnist.ClassNames.Length);
        var parameters = net.parameters().Concat(variant.Module.parameters()).Where(p => p.requires_grad).ToList();
        using var optimizer = optim.Adam(parameters, lr: 1e-3);
        var count = trainX.shape[0];
        var stepsPerEpoch = (count + options.Batch - 1) / options.Batch;
        var schedule = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max: epochs * stepsPerEpoch);
        var clock = Stopwatch.StartNew();
        for (var epoch = 0; epoch < epochs; epoch++)
        {
            net.train();
            variant.Module.train();
            using var order = randperm(count);
            double lossSum = 0;
            var steps = 0;
            for (long start = 0; start < count; start += options.Batch)
            {
                using var scope = NewDisposeScope();
                var index = order.narrow(0, start, Math.Min(options.Batch, count - start));
                var (x, y) = (trainX.index_select(0, index), trainY.index_select(0, index));
                optimizer.zero_grad();
                var embedding = net.forward(x);
                var loss = variant.Loss(embedding, y);
                loss.backward();
                optimizer.step();
                schedule.step();
                variant.AfterStep(embedding.detach(), y);
                lossSum += loss.item<float>();
                steps++;
            }
            Console.WriteLine($"  {name} {dim}-D epoch {epoch + 1}: mean loss {lossSum / steps:F4}, {clock.Elapsed.TotalSeconds:F0} s");
        }
        var seconds = clock.Elapsed.TotalSeconds / epochs;
        var (accuracy, embeddings) = Evaluate(net, variant, testX, testY, keepEmbedding);
        return new Result(variant.Settings, accuracy, seconds, embeddings);
    }

    static (double Accuracy, Tensor? Embedding) Evaluate(EmbeddingNet net, LossVariant variant, Tensor x, Tensor y, bool keep)
    {
        net.eval();
        variant.Module.eval();
        using var noGrad = no_grad();
        long correct = 0;
        var parts = new List<Tensor>();
        for (long start = 0; start < x.shape[0]; start += 1000)
        {
            var length = Math.Min(1000, x.shape[0] - start);
            using var scope = NewDisposeScope();
            var embedding = net.forward(x.narrow(0, start, length));
            var predicted = variant.Logits(embedding).argmax(1);
            correct += predicted.eq(y.narrow(0, start, length)).sum().item<long>();
            if (keep) parts.Add(embedding.MoveToOuterDisposeScope());
        }
        return ((double)correct / x.shape[0], keep ? cat(parts, 0) : null);
    }

    sealed record Options(int Epochs, long Dim, long Batch, string[] Losses, int PlotEpochs, string PlotDir,
        long PlotTrain, long Train, string Data, int Threads, long Seed)
    {
        public static Options Parse(string[] args)
        {
            var o = new Options(2, 64, 128, LossVariant.Names, 0, "docs/images", 20000, 60000, FashionMnist.DefaultDirectory, 2, 1);
            for (var i = 0; i < args.Length; i += 2)
            {
                if (i + 1 >= args.Length) throw new ArgumentException($"softmax-family: option {args[i]} needs a value.");
                var v = args[i + 1];
                o = args[i] switch
                {
                    "--epochs" => o with { Epochs = int.Parse(v, CultureInfo.InvariantCulture) },
                    "--dim" => o with { Dim = long.Parse(v, CultureInfo.InvariantCulture) },
                    "--batch" => o with { Batch = long.Parse(v, CultureInfo.InvariantCulture) },
                    "--losses" => o with { Losses = v.Split(',', StringSplitOptions.RemoveEmptyEntries) },
                    "--plot-epochs" => o with { PlotEpochs = int.Parse(v, CultureInfo.InvariantCulture) },
                    "--plot-dir" => o with { PlotDir = v },
                    "--plot-train" => o with { PlotTrain = long.Parse(v, CultureInfo.InvariantCulture) },
                    "--train" => o with { Train = long.Parse(v, CultureInfo.InvariantCulture) },
                    "--data" => o with { Data = v },
                    "--threads" => o with { Threads = int.Parse(v, CultureInfo.InvariantCulture) },
                    "--seed" => o with { Seed = long.Parse(v, CultureInfo.InvariantCulture) },
                    _ => throw new ArgumentException(
                        $"softmax-family: unknown option {args[i]}; known: --epochs --dim --batch --losses " +
                        "--plot-epochs --plot-dir --plot-train --train --data --threads --seed."),
                };
            }
            foreach (var name in o.Losses) LossVariant.Create(name, 2, 2).Dispose(); // fail early on a typo
            return o;
        }
    }
}
