#!/usr/bin/python3
"""Writes lovasz_reference.json with Debian's python3-torch (run with /usr/bin/python3 from this folder): losses and
gradients of the official Lovász-Softmax and Lovász hinge (bermanmaxim/LovaszSoftmax, pytorch/lovasz_losses.py;
the functions below follow its algorithm step by step) on inputs where many errors are exactly 0. The C# tests
compare every Seg path with these numbers; they never run Python.

Where an error is exactly 0 the reference's gradient is 0: d|x|/dx at 0 is 0 in torch (Lovász-Softmax), and so is
relu's derivative at 0 (Lovász hinge).

Cases (probabilities are stored, not logits, so that both sides start from the same float32 values):
  softmax: [2,3,4,5] float32 probabilities; a third of the pixels saturated one-hot (p = 1 on one class, 0 on the
           others: what float32 softmax gives for logits far apart), some of them on the labelled class (all errors
           0) and some on another class; the rest random; 255 = ignored; classes 'present' and 'all', per image
           or not; the reference is run in float32 (as in training) and in float64.
  hinge:   [2,4,5] scores, some exactly ±1 so that 1 − s·(2y − 1) is exactly 0; per image and not.
"""
import json

import torch

torch.manual_seed(20240611)


# --- the reference's algorithm (lovasz_losses.py) ---

def lovasz_grad(gt_sorted):
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    if len(gt_sorted) > 1:
        jaccard[1:] = jaccard[1:] - jaccard[:-1]
    return jaccard


def lovasz_softmax_flat(probas, labels, classes):
    if probas.numel() == 0:
        return probas * 0.0
    losses = []
    for c in range(probas.size(1)):
        fg = (labels == c).to(probas.dtype)
        if classes == 'present' and fg.sum() == 0:
            continue
        errors = (fg - probas[:, c]).abs()
        errors_sorted, perm = torch.sort(errors, 0, descending=True)
        losses.append(torch.dot(errors_sorted, lovasz_grad(fg[perm])))
    return torch.stack(losses).mean()


def flatten_probas(probas, labels, ignore):
    b, c, h, w = probas.shape
    probas = probas.permute(0, 2, 3, 1).reshape(-1, c)
    labels = labels.view(-1)
    valid = labels != ignore
    return probas[valid], labels[valid]


def lovasz_softmax(probas, labels, classes, per_image, ignore):
    if per_image:
        return torch.stack([lovasz_softmax_flat(*flatten_probas(p.unsqueeze(0), l.unsqueeze(0), ignore), classes)
                            for p, l in zip(probas, labels)]).mean()
    return lovasz_softmax_flat(*flatten_probas(probas, labels, ignore), classes)


def lovasz_hinge_flat(logits, labels):
    signs = 2.0 * labels.to(logits.dtype) - 1.0
    errors = 1.0 - logits * signs
    errors_sorted, perm = torch.sort(errors, dim=0, descending=True)
    grad = lovasz_grad(labels[perm].to(logits.dtype))
    return torch.dot(torch.relu(errors_sorted), grad)


def lovasz_hinge(logits, labels, per_image):
    if per_image:
        return torch.stack([lovasz_hinge_flat(s.reshape(-1), l.reshape(-1)) for s, l in zip(logits, labels)]).mean()
    return lovasz_hinge_flat(logits.reshape(-1), labels.reshape(-1))


# --- inputs ---

B, C, H, W = 2, 3, 4, 5
labels = torch.randint(0, C, (B, H, W))
labels[torch.rand(B, H, W) < 0.15] = 255
probas = torch.softmax(torch.randn(B, C, H, W), dim=1)
saturated = torch.rand(B, H, W) < 0.35
on_label = torch.rand(B, H, W) < 0.6
hot = torch.where(on_label & (labels != 255), labels, torch.randint(0, C, (B, H, W)))
one_hot = torch.nn.functional.one_hot(hot, C).permute(0, 3, 1, 2).float()
probas = torch.where(saturated.unsqueeze(1), one_hot, probas).float().contiguous()
zero_errors = int(((probas == 1) & (torch.nn.functional.one_hot(labels.clamp(max=C - 1), C).permute(0, 3, 1, 2) == 1)
                   & (labels != 255).unsqueeze(1)).sum())
assert zero_errors > 5, zero_errors

scores = torch.randn(B, H, W)
hinge_labels = torch.randint(0, 2, (B, H, W))
exact = torch.rand(B, H, W) < 0.3
scores = torch.where(exact, 2.0 * hinge_labels.float() - 1.0, scores).contiguous()   # error 1 − s·sign = 0 there


def run(fn, x, *args):
    x = x.detach().clone().requires_grad_(True)
    loss = fn(x, *args)
    loss.backward()
    return loss.item(), x.grad.reshape(-1).tolist()


cases = []
for classes in ('present', 'all'):
    for per_image in (False, True):
        for dtype in (torch.float32, torch.float64):
            loss, grad = run(lambda p: lovasz_softmax(p, labels, classes, per_image, 255), probas.to(dtype))
            cases.append({'loss': 'softmax', 'classes': classes, 'per_image': per_image,
                          'dtype': str(dtype).replace('torch.', ''), 'value': loss, 'grad': grad})
for per_image in (False, True):
    for dtype in (torch.float32, torch.float64):
        loss, grad = run(lambda s: lovasz_hinge(s, hinge_labels, per_image), scores.to(dtype))
        cases.append({'loss': 'hinge', 'classes': None, 'per_image': per_image,
                      'dtype': str(dtype).replace('torch.', ''), 'value': loss, 'grad': grad})

with open('lovasz_reference.json', 'w') as f:
    json.dump({'torch': torch.__version__,
               'probas': {'shape': [B, C, H, W], 'values': probas.reshape(-1).tolist()},
               'labels': {'shape': [B, H, W], 'values': labels.reshape(-1).tolist()},
               'scores': {'shape': [B, H, W], 'values': scores.reshape(-1).tolist()},
               'hinge_labels': {'shape': [B, H, W], 'values': hinge_labels.reshape(-1).tolist()},
               'cases': cases}, f)
print(f'{len(cases)} cases, {zero_errors} labelled pixels with error 0 in their class')
