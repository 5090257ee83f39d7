#!/usr/bin/python3
"""Writes jdt_expected.json: random cases and their loss under the semantics of the official JDTLoss
(zifuwanggg/JDTLosses, losses/jdt_loss.py), re-expressed here in PyTorch (Debian's python3-torch), for
Seg.Tests/Losses/MetricLossPyTorchTests.cs. Run with /usr/bin/python3 from this folder; the tests never run Python.

What the official code does, and this script repeats in its own words: probabilities by softmax over classes;
hard labels become one-hot (after clamping), and a keep mask (label != ignore) zeroes both prediction and label;
cardinalities are L1 norms over pixels, tp = (|x| + |y| - |x - y|)/2, fp = |x| - tp, fn = |y| - tp;
T = (tp + s)/(tp + a*fp + b*fn + s); loss = 1 - T (or -log T), raised to gamma when gamma > 1, times the class
weight; per dataset the counts are summed over the batch and the loss averaged over active classes; per image and
per class the (image, class) losses are averaged along one axis over active entries, then over the rows with one.
Active: PRESENT = max of the label over the set > threshold, ALL = every entry. Soft labels here mark unlabelled
pixels with all-zero vectors and pass the matching keep mask, as the official soft-label training does.
"""
import json

import torch

torch.manual_seed(2024)
DT = torch.float64


def l1(t):
    return torch.norm(t, p=1, dim=2)


def jdt(logits, label, hard, ignore, alpha, beta, gamma, smooth, log_loss, weights, mode, threshold, w_d, w_i, w_c):
    b, c = logits.shape[:2]
    prob = logits.reshape(b, c, -1).softmax(1)
    if hard:
        flat = label.reshape(b, -1)
        keep = (flat != ignore).unsqueeze(1).to(DT)
        target = torch.nn.functional.one_hot(flat.clamp(0, c - 1), c).permute(0, 2, 1).to(DT)
    else:
        target = label.reshape(b, c, -1)
        keep = (target.sum(1, keepdim=True) > 0).to(DT)
    prob = prob * keep
    target = target * keep
    px, py, pd = l1(prob), l1(target), l1(prob - target)
    tp = (px + py - pd) / 2
    fp, fn = px - tp, py - tp

    def class_loss(t, f, n):
        tv = (t + smooth) / (t + alpha * f + beta * n + smooth)
        out = -torch.log(tv) if log_loss else 1 - tv
        if gamma > 1:
            out = out ** gamma
        if weights is not None:
            out = out * torch.tensor(weights, dtype=DT)
        return out

    total = torch.zeros((), dtype=DT)
    if w_d > 0:
        act = (target.amax(dim=(0, 2)) > threshold) if mode == "present" else torch.ones(c, dtype=torch.bool)
        if act.any():
            total = total + w_d * class_loss(tp.sum(0), fp.sum(0), fn.sum(0))[act].mean()
    if w_i > 0 or w_c > 0:
        act = (target.amax(dim=2) > threshold) if mode == "present" else torch.ones(b, c, dtype=torch.bool)
        m = class_loss(tp, fp, fn) * act
        for weight, axis in ((w_i, 1), (w_c, 0)):
            if weight > 0 and act.any():
                count = act.sum(axis)
                rows = count > 0
                total = total + weight * (m.sum(axis)[rows] / count[rows]).mean()
    return total.item()


cases = []
settings = [
    dict(alpha=1.0, beta=1.0, gamma=1.0, smooth=1.0, log_loss=False, weights=None, mode="present", threshold=0.01, w_d=1.0, w_i=0.0, w_c=0.0),
    dict(alpha=1.0, beta=1.0, gamma=1.0, smooth=1.0, log_loss=False, weights=None, mode="present", threshold=0.01, w_d=0.0, w_i=0.5, w_c=0.5),
    dict(alpha=0.5, beta=0.5, gamma=2.0, smooth=1.0, log_loss=False, weights=[1.0, 0.5, 2.0, 1.5], mode="all", threshold=0.01, w_d=0.3, w_i=0.3, w_c=0.4),
    dict(alpha=0.3, beta=0.7, gamma=1.5, smooth=0.1, log_loss=True, weights=None, mode="present", threshold=0.05, w_d=1.0, w_i=1.0, w_c=1.0),
]
for i, s in enumerate(settings):
    for hard in (True, False):
        b, c, h, w = 3, 4, 5, 6
        logits = torch.randn(b, c, h, w, dtype=DT) * 2
        if hard:
            # Two classes per image at most in image 0, so PRESENT and ALL differ; about 15 % ignored (255).
            label = torch.randint(0, c, (b, h, w))
            label[0] = label[0] % 2
            label[torch.rand(b, h, w) < 0.15] = 255
        else:
            label = (torch.randn(b, c, h, w, dtype=DT) * 3).softmax(1)
            label[1, :, 0, :2] = 0  # two unlabelled pixels
        expected = jdt(logits, label, hard, 255, **s)
        cases.append(dict(settings=s, hard=hard, shape=[b, c, h, w],
                          logits=logits.reshape(-1).tolist(), labels=label.reshape(-1).tolist(), expected=expected))

with open("jdt_expected.json", "w") as f:
    json.dump(dict(torch=torch.__version__, cases=cases), f)
print(f"{len(cases)} cases written with torch {torch.__version__}")
