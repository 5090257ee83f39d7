#!/usr/bin/python3
"""Forward FLOPs of an exported Seg model (ONNX, static 64x64 input), scaled to 512x512.

Counts 2 x multiply-adds of Conv (out_elements x in_channels/groups x kh x kw) and MatMul (out_elements x K) nodes,
after onnx's shape inference; normalisation, activations, pooling, resizing and additions are not counted. A
node whose output has a spatial extent (H*W > 1, or a channels-last MatMul over H and W) is scaled by
(512/64)^2 = 64, exact for Seg's models because every feature size divides at both sizes; nodes after global
pooling (squeeze-excitation, classifiers) are not scaled. Prints the FLOP count."""
import sys

import numpy as np
import onnx
from onnx import shape_inference

def dims(v):
    return [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim]


# onnx 1.12 cannot see through Seg's resizes (their sizes come from Shape -> Slice -> Concat): give each Resize
# the channels of its input and the height and width of the tensor whose Shape feeds its sizes, then infer again.
model = onnx.load(sys.argv[1])
producer = {o: n for n in model.graph.node for o in n.output}
for _ in range(50):
    model = shape_inference.infer_shapes(model)
    shapes = {v.name: dims(v) for v in list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input)}
    known = {v.name for v in model.graph.value_info if all(d > 0 for d in dims(v)[1:])}
    added = False
    for node in model.graph.node:
        if node.op_type != "Resize" or node.output[0] in known or node.input[0] not in shapes:
            continue
        like = producer[producer[producer[node.input[3]].input[1]].input[0]].input[0]   # Concat <- Slice <- Shape <- like
        if like not in shapes or any(d <= 0 for d in shapes[like][2:]) or shapes[node.input[0]][1] <= 0:
            continue
        out = [1, shapes[node.input[0]][1]] + shapes[like][2:]
        for v in list(model.graph.value_info):
            if v.name == node.output[0]:
                model.graph.value_info.remove(v)
        model.graph.value_info.append(onnx.helper.make_tensor_value_info(node.output[0], onnx.TensorProto.FLOAT, out))
        added = True
    if not added:
        break
g = model.graph
for init in g.initializer:
    shapes[init.name] = list(init.dims)

flops = 0
for node in g.node:
    if node.op_type not in ("Conv", "MatMul"):
        continue
    out = shapes[node.output[0]]
    out = [1 if i == 0 and d <= 0 else d for i, d in enumerate(out)]   # batch N = 1
    if any(d <= 0 for d in out):
        sys.exit(f"{node.name}: unknown output shape {out}")
    weight = shapes[node.input[1]]
    if node.op_type == "Conv":
        macs = int(np.prod(out)) * weight[1] * int(np.prod(weight[2:]))  # weight[1] = in_channels / groups
        spatial = out[2] * out[3] > 1
    else:
        macs = int(np.prod(out)) * weight[0]
        spatial = len(out) == 4 and out[1] * out[2] > 1
    flops += 2 * macs * (64 if spatial else 1)
print(flops)
