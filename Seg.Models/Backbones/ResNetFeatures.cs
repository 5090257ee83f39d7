using static TorchSharp.torch;

namespace Seg.Models.Backbones;

/// <summary>Intermediate ResNet outputs: <see cref="Stem"/> after conv1/bn1/relu (stride 2), then each layer's output
/// (strides 4, 8, 16, 32 unless dilated).</summary>
public readonly record struct ResNetFeatures(Tensor Stem, Tensor Layer1, Tensor Layer2, Tensor Layer3, Tensor Layer4);
