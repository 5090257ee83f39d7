#!/usr/bin/python3
"""Equivalence check against torchvision (not run in CI): writes random-init weights, a fixed input and
torchvision's eval-mode output for resnet50 and deeplabv3_resnet50 (21 classes, aux head) to the folder given
as the first argument (default /tmp/seg_equiv). Then run the Heavy test with SEG_EQUIV_DIR=<folder>:
  dotnet test Seg.Tests --filter "FullyQualifiedName~TorchvisionEquivalenceTests"
BatchNorm statistics and affine parameters are randomised so that eval mode exercises them."""
import os, sys
import torch, torchvision

out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/seg_equiv"
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)
models = {
    "resnet50": (torchvision.models.resnet50(), (2, 3, 64, 80)),
    "deeplabv3_resnet50": (torchvision.models.segmentation.deeplabv3_resnet50(
        weights=None, weights_backbone=None, num_classes=21, aux_loss=True), (2, 3, 97, 75)),
}
for name, (model, shape) in models.items():
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    model.eval()
    x = torch.randn(*shape)
    with torch.no_grad():
        y = model(x)
    io = {"input": x}
    if isinstance(y, dict):
        io["aux"] = y["aux"]
        y = y["out"]
    io["output"] = y
    torch.save(model.state_dict(), os.path.join(out, f"{name}.pth"))
    torch.save(io, os.path.join(out, f"{name}_io.pth"))
    print(name, tuple(y.shape), float(y.abs().max()))
