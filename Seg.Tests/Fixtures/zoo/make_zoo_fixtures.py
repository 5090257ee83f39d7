#!/usr/bin/python3
"""Fixtures for the model zoo, made with Debian's python3-torch 1.13 / python3-torchvision 0.14 (run with
/usr/bin/python3 from this folder). The C# tests compare Seg's models against what torchvision computes here.

  python3 make_zoo_fixtures.py            writes, next to this script:
      zoo_keys.txt.gz         "model<TAB>key<TAB>shape" for every state_dict entry of torchvision's models
      zoo_param_counts.json   their trainable parameter counts
      io/<model>.pth          {"input", "output"[, "aux"]}: torchvision's eval output with *pattern* weights
  python3 make_zoo_fixtures.py --random DIR NAME...
      writes DIR/<name>.pth (torch.save of a state_dict with seeded random weights, BatchNorm/LayerNorm statistics
      and affine parameters randomised) and DIR/<name>_io.pth; used by the opt-in Heavy test, which runs this.

Pattern weights: a full model's weights are too big to commit (resnext101_32x8d is 340 MB), so the committed
outputs use weights that both sides compute from the key and the element index with integer arithmetic and two
float32 operations (bit-identical in numpy and C#; see PatternWeights.cs): u = hash(key, i) mod 2001 - 1000, value
= A + B*u in float32, with A, B per kind of tensor (running_var in [0.5, 1.5], running_mean +-0.1, norm weights
1 +- 0.5, biases +-0.1, layer_scale +-0.5, conv/linear weights uniform +-sqrt(6/fan_in)). torchvision then computes
the output; nothing on the C# side computes an expected value. Pattern weights are not trained weights: in the
deeper EfficientNets their activations grow until float32 rounding alone moves the output by ~1e-2 (torch float32
against torch float64: 8.6e-3 for efficientnet_b4), so the committed io files hold float64 inputs and outputs and
the test runs the C# model in float64. The float32 path is checked against torchvision with the random weights of
--random (realistic conditioning), in float32."""
import gzip, json, math, os, sys

import numpy as np
import torch
import torchvision
from torchvision.models import segmentation as S

M = torchvision.models
CLASSIFIERS = {
    "mobilenet_v3_large": M.mobilenet_v3_large, "mobilenet_v3_small": M.mobilenet_v3_small,
    "efficientnet_b0": M.efficientnet_b0, "efficientnet_b1": M.efficientnet_b1, "efficientnet_b2": M.efficientnet_b2,
    "efficientnet_b3": M.efficientnet_b3, "efficientnet_b4": M.efficientnet_b4,
    "convnext_tiny": M.convnext_tiny, "convnext_small": M.convnext_small,
    "resnext50_32x4d": M.resnext50_32x4d, "resnext101_32x8d": M.resnext101_32x8d,
}
SEGMENTATION = {
    "fcn_resnet50": S.fcn_resnet50, "fcn_resnet101": S.fcn_resnet101,
    "deeplabv3_mobilenet_v3_large": S.deeplabv3_mobilenet_v3_large, "lraspp_mobilenet_v3_large": S.lraspp_mobilenet_v3_large,
}
IO_CLASSES = 4                       # segmentation outputs in the committed io files (keys use 21, VOC's)
IO_SHAPE_CLASSIFIER = (1, 3, 64, 64)
IO_SHAPE_SEGMENTATION = (1, 3, 40, 52)


def build(name, num_classes=None, aux=False):
    if name in CLASSIFIERS:
        return CLASSIFIERS[name](weights=None, **({} if num_classes is None else {"num_classes": num_classes}))
    kwargs = dict(weights=None, weights_backbone=None, num_classes=num_classes or 21)
    if name != "lraspp_mobilenet_v3_large":
        kwargs["aux_loss"] = aux
    return SEGMENTATION[name](**kwargs)


def fnv1a(key):
    h = 0x811C9DC5
    for b in key.encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def pattern(key, shape):
    n = int(np.prod(shape)) if len(shape) else 1
    i = np.arange(n, dtype=np.uint64)
    h = (np.uint64(fnv1a(key)) + i * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x45D9F3B)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(16)
    u = ((h % np.uint64(2001)).astype(np.int64) - 1000).astype(np.float32)
    if key.endswith("running_var"):
        a, b = 1.0, 0.0005
    elif key.endswith("running_mean"):
        a, b = 0.0, 0.0001
    elif key.endswith("layer_scale"):
        a, b = 0.0, 0.0005
    elif len(shape) >= 2:
        a, b = 0.0, math.sqrt(6.0 / (n // shape[0])) / 1000.0
    elif key.endswith("weight"):
        a, b = 1.0, 0.0005
    else:
        a, b = 0.0, 0.0001
    v = np.float32(a) + np.float32(b) * u
    return torch.from_numpy(v.astype(np.float32)).reshape(shape)


def fill_pattern(model):
    sd = model.state_dict()
    with torch.no_grad():
        for k, t in sd.items():
            if t.is_floating_point():
                t.copy_(pattern(k, tuple(t.shape)))


def fill_random(model, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)) or type(m).__name__ == "LayerNorm2d":
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
            if hasattr(m, "layer_scale"):
                m.layer_scale.uniform_(0.2, 0.8)


def forward(model, x):
    model.eval()
    with torch.no_grad():
        y = model(x)
    io = {"input": x}
    if isinstance(y, dict):
        if "aux" in y:
            io["aux"] = y["aux"]
        y = y["out"]
    io["output"] = y
    return io


def io_model(name):
    aux = name in SEGMENTATION and name != "lraspp_mobilenet_v3_large"
    return build(name, IO_CLASSES if name in SEGMENTATION else None, aux), \
        IO_SHAPE_SEGMENTATION if name in SEGMENTATION else IO_SHAPE_CLASSIFIER


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    if len(sys.argv) > 2 and sys.argv[1] == "--random":
        out = sys.argv[2]
        os.makedirs(out, exist_ok=True)
        for name in sys.argv[3:]:
            model, shape = io_model(name)
            fill_random(model, fnv1a(name) % 10000)
            torch.manual_seed(7)
            io = forward(model, torch.randn(*shape))
            torch.save(model.state_dict(), os.path.join(out, f"{name}.pth"))
            torch.save(io, os.path.join(out, f"{name}_io.pth"))
        return

    lines, counts = [], {}
    variants = [(n, n, False) for n in CLASSIFIERS] + [(n, n, False) for n in SEGMENTATION] + \
               [(n + "_aux", n, True) for n in SEGMENTATION if n != "lraspp_mobilenet_v3_large"]
    for label, name, aux in variants:
        m = build(name, aux=aux)
        counts[label] = sum(p.numel() for p in m.parameters())
        for k, v in m.state_dict().items():
            lines.append(f"{label}\t{k}\t{','.join(str(s) for s in v.shape)}")
    with gzip.GzipFile(os.path.join(here, "zoo_keys.txt.gz"), "wb", mtime=0) as f:
        f.write(("\n".join(lines) + "\n").encode())
    json.dump(counts, open(os.path.join(here, "zoo_param_counts.json"), "w"), indent=1)

    os.makedirs(os.path.join(here, "io"), exist_ok=True)
    for name in list(CLASSIFIERS) + list(SEGMENTATION):
        model, shape = io_model(name)
        fill_pattern(model)
        torch.manual_seed(fnv1a(name) % 10000)
        io = forward(model.double(), torch.randn(*shape).double())
        torch.save(io, os.path.join(here, "io", f"{name}.pth"))
        print(name, tuple(io["output"].shape), float(io["output"].abs().max()))


if __name__ == "__main__":
    main()
