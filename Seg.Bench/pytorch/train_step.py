#!/usr/bin/env python3
"""PyTorch's side of Seg.Bench's `train-step` comparison: the default config's training step, in PyTorch.

The model mirrors Seg's `unet` (depth 3, base width 16, bilinear up-sampling, 3x3 conv + BN + ReLU twice per stage,
replicate padding to a multiple of 2^depth, 1x1 classifier with bias), batch 8, 64x64, 4 classes, AdamW
(lr 0.003, weight decay 1e-4). Losses: cross-entropy (ignore 255), or cross-entropy + Lovasz-Softmax computed the
way the official code does it (bermanmaxim/LovaszSoftmax: drop ignored pixels, then one sort per present class).
One step = forward + backward + optimizer step (+ a device synchronisation on CUDA).

Seg.Bench runs this script in alternation with its own step and reads the JSON line it prints:
  {"loss": "ce", "device": "cpu", "threads": 2, "torch": "1.13.1", "steps_ms": [...]}
Run by hand:  python3 Seg.Bench/pytorch/train_step.py --loss ce_lovasz --device cpu --steps 30 --threads 2
Needs only PyTorch (Debian: apt install python3-torch; nothing from PyPI).
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def double_conv(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class UNet(nn.Module):
    def __init__(self, classes, depth=3, width=16, in_channels=3):
        super().__init__()
        c = [width << i for i in range(depth + 1)]
        self.depth = depth
        self.inc = double_conv(in_channels, c[0])
        self.downs = nn.ModuleList(double_conv(c[i], c[i + 1]) for i in range(depth))
        # Bilinear up steps: the deeper map is resized to the skip's size, concatenated, then a double conv.
        self.ups = nn.ModuleList(double_conv(c[depth - j] + c[depth - j - 1], c[depth - j - 1]) for j in range(depth))
        self.classifier = nn.Conv2d(c[0], classes, 1)

    def forward(self, x):
        h, w = x.shape[-2:]
        m = 1 << self.depth
        ph, pw = (m - h % m) % m, (m - w % m) % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(F.max_pool2d(skips[-1], 2)))
        y = skips[-1]
        for j, up in enumerate(self.ups):
            skip = skips[self.depth - j - 1]
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = up(torch.cat([skip, y], 1))
        y = self.classifier(y)
        return y[..., :h, :w] if (ph or pw) else y


def lovasz_grad(gt_sorted):
    # Gradient of the Lovasz extension of the Jaccard loss w.r.t. sorted errors (Berman et al., CVPR 2018, Alg. 1).
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    if gt_sorted.numel() > 1:
        jaccard[1:] = jaccard[1:] - jaccard[:-1]
    return jaccard


def lovasz_softmax_official(probas, labels, ignore=255):
    """The official per-class loop: flatten, drop ignored pixels, one descending sort per present class."""
    c = probas.shape[1]
    probas = probas.permute(0, 2, 3, 1).reshape(-1, c)
    labels = labels.reshape(-1)
    valid = labels != ignore
    probas, labels = probas[valid], labels[valid]
    losses = []
    for k in range(c):
        fg = (labels == k).float()
        if fg.sum() == 0:
            continue
        errors = (fg - probas[:, k]).abs()
        errors_sorted, perm = torch.sort(errors, 0, descending=True)
        losses.append(torch.dot(errors_sorted, lovasz_grad(fg[perm])))
    return torch.stack(losses).mean() if losses else probas.sum() * 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loss", choices=["ce", "ce_lovasz"], default="ce")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--classes", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32",
                    help="bf16/fp16: forward and loss under torch.autocast, fp16 with a GradScaler (CUDA)")
    ap.add_argument("--mkldnn", choices=["on", "off"], default="on",
                    help="off: ATen's own convolutions, as Seg uses on CPUs where oneDNN is switched off")
    ap.add_argument("--part", choices=["forward", "loss", "backward", "step", "optimizer"], default="step",
                    help="time only part of the step: forward; forward + loss; those + zero_grad + backward; the whole "
                         "step; the optimizer alone (zero_grad + step)")
    a = ap.parse_args()
    torch.backends.mkldnn.enabled = a.mkldnn == "on"
    try:  # not every build has NNPACK (Debian's 1.13 has no torch.backends.nnpack)
        import torch.backends.nnpack as nnpack
        nnpack.set_flags(a.mkldnn == "on")
    except ImportError:
        pass
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    dev = torch.device(a.device)
    model = UNet(a.classes, a.depth, a.width).to(dev).train()
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(a.precision)
    if amp_dtype == torch.float16 and dev.type == "cpu" and torch.__version__ < "2":
        raise SystemExit("PyTorch %s has no float16 autocast on the CPU" % torch.__version__)
    scaler = torch.cuda.amp.GradScaler() if amp_dtype == torch.float16 and dev.type == "cuda" else None
    opt = torch.optim.AdamW(model.parameters(), lr=0.003, weight_decay=1e-4)
    images = torch.randn(a.batch, 3, a.size, a.size, device=dev)
    labels = torch.randint(0, a.classes, (a.batch, a.size, a.size), device=dev)
    labels[torch.rand(a.batch, a.size, a.size, device=dev) < 0.05] = 255
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    times = []
    if a.part == "optimizer":  # gradients to update, as Seg's side
        F.cross_entropy(model(images), labels, ignore_index=255).backward()
    for i in range(a.warmup + a.steps):
        sync()
        t0 = time.perf_counter()
        if a.part == "optimizer":
            opt.zero_grad(set_to_none=False)
            opt.step()
        else:
            with torch.autocast(dev.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
                logits = model(images)
                if a.part != "forward":
                    loss = F.cross_entropy(logits, labels, ignore_index=255)
                    if a.loss == "ce_lovasz":  # in float32, as Seg's losses
                        loss = loss + lovasz_softmax_official(logits.float().softmax(1), labels)
            if a.part in ("backward", "step"):
                opt.zero_grad(set_to_none=False)
                (loss if scaler is None else scaler.scale(loss)).backward()
            if a.part == "step":
                if scaler is None:
                    opt.step()
                else:
                    scaler.step(opt)
                    scaler.update()
        sync()
        if i >= a.warmup:
            times.append((time.perf_counter() - t0) * 1000)
    print(json.dumps({"loss": a.loss, "device": a.device, "threads": torch.get_num_threads(),
                      "torch": torch.__version__, "mkldnn": a.mkldnn, "precision": a.precision, "part": a.part, "steps_ms": times}))


if __name__ == "__main__":
    main()
