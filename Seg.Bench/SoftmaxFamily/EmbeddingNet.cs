using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Seg.Bench.SoftmaxFamily;

/// <summary>
/// A small CNN from 28×28 grey images to a D-dimensional embedding: conv-BN-ReLU-pool (32 channels, 14×14),
/// a strided conv-BN-ReLU (64 channels, 7×7) and two fully connected layers (128, then D); about 1.5 M
/// multiply-adds per image, so that a run fits a few minutes on a shared 2-core CPU. The losses sit on top of it.
/// </summary>
internal sealed class EmbeddingNet : nn.Module<Tensor, Tensor>
{
    readonly Conv2d conv1, conv2;
    readonly BatchNorm2d bn1, bn2;
    readonly Linear fc1, fc2;

    public EmbeddingNet(long embeddingDim) : base(nameof(EmbeddingNet))
    {
        conv1 = nn.Conv2d(1, 32, 3, padding: 1);
        bn1 = nn.BatchNorm2d(32);
        conv2 = nn.Conv2d(32, 64, 3, stride: 2, padding: 1);
        bn2 = nn.BatchNorm2d(64);
        fc1 = nn.Linear(64 * 7 * 7, 128);
        fc2 = nn.Linear(128, embeddingDim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor images)
    {
        using var scope = NewDisposeScope();
        var x = nn.functional.max_pool2d(nn.functional.relu(bn1.forward(conv1.forward(images))), 2);
        x = nn.functional.relu(bn2.forward(conv2.forward(x)));
        x = nn.functional.relu(fc1.forward(x.flatten(1)));
        return fc2.forward(x).MoveToOuterDisposeScope();
    }
}
