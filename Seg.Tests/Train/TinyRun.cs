using Seg.Core;
using Seg.Train.Training;

namespace Seg.Tests.Train;

/// <summary>A training recipe small enough for the default test run: 32×32 shapes, a one-level UNet, a few steps.</summary>
internal static class TinyRun
{
    public const string Yaml = """
        name: tiny
        model: { name: unet, unet_depth: 1, unet_base_width: 4 }
        data:
          type: shapes
          size: 32
          crop_size: [32, 32]
          train_count: 8
          val_count: 4
          batch_size: 2
          workers: 0
          augment:
            - { type: horizontal_flip }
            - { type: random_rotate, degrees: 10 }
            - { type: normalize }
        loss:
          - { type: cross_entropy }
          - { type: lovasz_softmax, start: 0.5 }
        optimizer: { type: sgd, lr: 0.05, momentum: 0.9 }
        schedule: { type: poly, warmup_iters: 1 }
        train: { iterations: 6, eval_every: 3, checkpoint_every: 3, seed: 3, device: cpu, threads: 1 }   # one thread: bit-identical runs whatever the load
        eval: { batch_size: 2, samples: 2 }
        """;

    public static TrainRequest Request(string output, bool resume = false, params string[] overrides)
    {
        SegRuntime.Initialize();
        return new TrainRequest(Yaml, "tiny.yaml", overrides, output, resume);
    }
}
