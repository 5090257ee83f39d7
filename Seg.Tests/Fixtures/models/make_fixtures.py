#!/usr/bin/python3
"""Writes the Seg.Models test fixtures with Debian's python3-torch / python3-torchvision (run with /usr/bin/python3
from this folder). Everything the C# tests compare against comes from PyTorch here; the tests never run Python.

Outputs:
  tensors.pth / tensors.safetensors  small tensors of several dtypes (non-contiguous and shared-storage views in .pth)
  tensors_expected.json              dtype, shape and row-major values of each tensor above
  checkpoint.pth                     {'model': state_dict, 'epoch': 3}: a training checkpoint wrapping a state_dict
  evil.pth                           a pickle whose payload would call os.system: the reader must refuse it
  small_seq.pth                      state_dict of Sequential(Conv2d(3,4,3), BatchNorm2d(4)) with trained-like BN stats
  small_seq_expected.json            an input and the eval-mode output of that module in PyTorch
  torchvision_keys.txt.gz            "model<TAB>key<TAB>shape" for every state_dict entry of the torchvision models
  torchvision_param_counts.json      trainable parameter counts of the torchvision models
"""
import collections, gzip, json, os, struct

import torch
import torchvision

torch.manual_seed(1234)


def values(t):
    t = t.detach()
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    return t.reshape(-1).tolist()


def describe(t):
    return {"dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape), "values": values(t)}


# --- tensors.pth: dtypes, non-contiguous, shared storage -------------------------------------------------------
base = torch.arange(12, dtype=torch.float32) * 0.5 - 2.0           # one storage shared by two views
tensors = collections.OrderedDict()
tensors["f32"] = torch.randn(2, 3)
tensors["f16"] = torch.tensor([1.5, -0.25, 65504.0, 0.0009765625], dtype=torch.float16)
tensors["f64"] = torch.tensor([[1.0 / 3.0, -2.5]], dtype=torch.float64)
tensors["i64"] = torch.tensor([2 ** 40 + 1, -5, 7], dtype=torch.int64)
tensors["scalar"] = torch.tensor(3.5)
tensors["transposed"] = torch.randn(3, 4).t()                   # strides (1, 4): not contiguous
tensors["shared_a"] = base[2:8].view(2, 3)                       # offset 2 into the shared storage
tensors["shared_b"] = base.view(3, 4)[:, 1::2]                   # same storage, strided view
assert tensors["shared_a"].storage().data_ptr() == tensors["shared_b"].storage().data_ptr()
assert not tensors["transposed"].is_contiguous()
torch.save(tensors, "tensors.pth")
with open("tensors_expected.json", "w") as f:
    json.dump({k: describe(v) for k, v in tensors.items()}, f, indent=1)

# --- tensors.safetensors, written by hand (format: u64 LE header size, JSON header, raw little-endian data) -----
st = collections.OrderedDict([("f32", tensors["f32"]), ("f16", tensors["f16"]), ("i64", tensors["i64"]),
                              ("transposed", tensors["transposed"].contiguous()),
                              ("bf16", torch.tensor([1.0, -2.0, 0.5], dtype=torch.bfloat16))])
codes = {torch.float32: "F32", torch.float16: "F16", torch.int64: "I64", torch.bfloat16: "BF16"}
header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
for k, v in st.items():
    raw = v.contiguous().view(torch.uint8).numpy().tobytes() if v.dtype != torch.bfloat16 else \
        v.contiguous().view(torch.int16).numpy().tobytes()
    header[k] = {"dtype": codes[v.dtype], "shape": list(v.shape), "data_offsets": [offset, offset + len(raw)]}
    blobs.append(raw)
    offset += len(raw)
hjson = json.dumps(header).encode()
hjson += b" " * ((8 - len(hjson) % 8) % 8)
with open("tensors.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(hjson)) + hjson + b"".join(blobs))
exp = json.load(open("tensors_expected.json"))
exp["bf16"] = describe(st["bf16"])
json.dump(exp, open("tensors_expected.json", "w"), indent=1)

# --- small module: real PyTorch forward as the oracle ------------------------------------------------------------
seq = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
with torch.no_grad():
    seq[1].running_mean.copy_(torch.randn(4) * 0.1)
    seq[1].running_var.copy_(torch.rand(4) + 0.5)
    seq[1].weight.copy_(torch.rand(4) + 0.5)
    seq[1].bias.copy_(torch.randn(4))
    seq[1].num_batches_tracked.fill_(17)
seq.eval()
x = torch.randn(1, 3, 5, 6)
y = seq(x)
torch.save(seq.state_dict(), "small_seq.pth")
torch.save({"model": seq.state_dict(), "epoch": 3}, "checkpoint.pth")
json.dump({"input": describe(x), "output": describe(y)}, open("small_seq_expected.json", "w"))


# --- a hostile pickle --------------------------------------------------------------------------------------------
class Evil:
    def __reduce__(self):
        return (os.system, ("echo this-must-never-run",))


torch.save({"x": torch.zeros(1), "payload": Evil()}, "evil.pth")

# --- torchvision key lists and parameter counts ------------------------------------------------------------------
seg = torchvision.models.segmentation
builders = {
    "resnet18": lambda: torchvision.models.resnet18(),
    "resnet34": lambda: torchvision.models.resnet34(),
    "resnet50": lambda: torchvision.models.resnet50(),
    "resnet101": lambda: torchvision.models.resnet101(),
    "deeplabv3_resnet50": lambda: seg.deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=21, aux_loss=False),
    "deeplabv3_resnet50_aux": lambda: seg.deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=21, aux_loss=True),
    "deeplabv3_resnet101": lambda: seg.deeplabv3_resnet101(weights=None, weights_backbone=None, num_classes=21, aux_loss=False),
    "deeplabv3_resnet101_aux": lambda: seg.deeplabv3_resnet101(weights=None, weights_backbone=None, num_classes=21, aux_loss=True),
}
counts, lines = {}, []
for name, build in builders.items():
    m = build()
    counts[name] = sum(p.numel() for p in m.parameters())
    for k, v in m.state_dict().items():
        lines.append(f"{name}\t{k}\t{','.join(str(s) for s in v.shape)}")
with gzip.GzipFile("torchvision_keys.txt.gz", "wb", mtime=0) as f:
    f.write(("\n".join(lines) + "\n").encode())
json.dump(counts, open("torchvision_param_counts.json", "w"), indent=1)
print(json.dumps(counts, indent=1))
