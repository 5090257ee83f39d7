#!/usr/bin/python3
"""Writes fine_grained_miou_expected.json with Debian's python3-torch (run with /usr/bin/python3 from this folder).

The C# tests feed the same labels and predictions to ConfusionMatrix and compare SegmentationMetrics with the values
computed here. This script follows the definitions of the official code of "Revisiting Evaluation Metrics for
Semantic Segmentation" (zifuwanggg/JDTLosses, metrics/accuracy_metric.py) step by step, written independently of
Seg: one-hot per image, TP/FP/FN per image and class, "active" classes (in the ground truth; with two classes, in
the ground truth or the prediction), inactive entries set to 0 for the per-image mean and to 1e6 (sorted last) for
the per-class mean, n = max(1, int(q / 100 * count)) for the worst-case means. Values are fractions, not percent.

Cases: a 4-class set with ignored pixels and one image without a labelled pixel, and a 2-class set (binary rule).
Every class occurs in some ground truth (the official per-class mean is NaN otherwise).
"""
import json

import torch
import torch.nn.functional as F

torch.manual_seed(20231)
IGNORE = 255
QS = [5, 10, 30, 50, 100]


def statistics(labels, preds, num_classes, binary):
    """Per scored image: tp, fp, fn [N, C] and active [N, C], as the official AccuracyMetric.add builds them."""
    tp, fp, fn, active = [], [], [], []
    for label, pred in zip(labels, preds):
        keep = label != IGNORE
        if keep.sum() == 0:
            continue                                   # images without a labelled pixel are not scored
        l = F.one_hot(label[keep], num_classes).T      # [C, P]
        p = F.one_hot(pred[keep], num_classes).T
        tp.append(((p == 1) & (l == 1)).sum(1))
        fp.append(((p == 1) & (l == 0)).sum(1))
        fn.append(((p == 0) & (l == 1)).sum(1))
        active.append((p + l).amax(1) > 0.5 if binary else l.amax(1) > 0.5)
    return torch.stack(tp).double(), torch.stack(fp).double(), torch.stack(fn).double(), torch.stack(active)


def reduce_images(iou, active, binary, q=None):
    iou = iou.clone()
    iou[~active] = 0
    count = active.sum(1)
    if binary:
        value = iou[:, 1].clone()
        value[count < 2] = 1
    else:
        value = iou.sum(1) / count
    n = value.numel() if q is None else max(1, int(q / 100 * value.numel()))
    return torch.sort(value)[0][:n].mean().item()


def reduce_classes(iou, active, q=None):
    iou = iou.clone()
    iou[~active] = 1e6
    count = active.sum(0)
    if q is not None:
        count = torch.clamp((q / 100 * count).long(), min=1)
    rank = torch.arange(iou.shape[0]).view(-1, 1).expand_as(iou)
    lowest = (rank < count) * torch.sort(iou, dim=0)[0]
    return (lowest.sum(0) / count).mean().item()


def case(name, num_images, num_classes, height, width, batch):
    binary = num_classes == 2
    while True:
        labels = torch.randint(0, num_classes, (num_images, height, width))
        # Blocky labels, so that classes are absent from some images, plus ignored pixels and one empty image.
        labels = torch.where(torch.rand(num_images, 1, 1) < 0.3, labels.clamp(max=num_classes - 2), labels)
        labels[torch.rand(num_images, height, width) < 0.1] = IGNORE
        labels[3] = IGNORE
        preds = torch.where(torch.rand(num_images, height, width) < 0.7, labels.clamp(max=num_classes - 1),
                            torch.randint(0, num_classes, (num_images, height, width)))
        preds[5] = 0                                   # an image predicted as background only
        labels[7], preds[7] = 0, 0                     # background only in both (binary: scores 1)
        tp, fp, fn, active = statistics(labels, preds, num_classes, binary)
        if bool(active.any(0).all()):
            break
    iou = tp / (tp + fp + fn)
    expected = {
        "mIoU_I": reduce_images(iou, active, binary),
        "mIoU_C": reduce_classes(iou, active),
        "worst_I": {str(q / 100): reduce_images(iou, active, binary, q) for q in QS},
        "worst_C": {str(q / 100): reduce_classes(iou, active, q) for q in QS},
        "scored_images": int(tp.shape[0]),
    }
    return {"name": name, "num_classes": num_classes, "ignore_index": IGNORE, "shape": [num_images, height, width],
            "batch": batch, "labels": labels.reshape(-1).tolist(), "predictions": preds.reshape(-1).tolist(),
            "expected": expected}


cases = [case("four_classes", 37, 4, 6, 5, 8), case("two_classes", 29, 2, 5, 7, 6)]
with open("fine_grained_miou_expected.json", "w") as f:
    json.dump({"torch": torch.__version__, "cases": cases}, f)
print("wrote", [(c["name"], c["expected"]["mIoU_I"], c["expected"]["mIoU_C"]) for c in cases])
