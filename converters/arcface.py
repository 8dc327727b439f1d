"""Converts an insightface arcface_torch IResNet state dict (``backbone.pth``) to sair_jax.

    python -m converters.arcface --src iresnet50.pth --dst checkpoints/arcface-r50

The architecture is read from the tensors: the number of stages and blocks per stage from the
``layer{i}.{j}.*`` keys (IResNet-18/34/50/100/200 or any other count), the widths from the conv
shapes, the embedding size from ``fc.weight``, and the input size from the fc input width
(arcface_torch halves the resolution in each of its four stages: 112 -> 7). float16 files
(arcface_torch's fp16 models) are converted to float32.

The torch -> Flax tensor conversions used here (and by ``converters/e4e.py``):
  conv weight  [O, I, kh, kw] -> kernel [kh, kw, I, O]   (OIHW -> HWIO)
  linear       [O, I]         -> kernel [I, O]
  BatchNorm    weight, bias, running_mean, running_var -> scale, bias, mean, var
  PReLU        weight [C]     -> alpha [C]
"""

from __future__ import annotations

import math
import os
import re
from typing import Any, Mapping

import numpy as np

from converters.common import (ConversionError, TensorTable, src_dst_program, torch_file_converter,
                               unwrap_state_dict)

KIND = "arcface_iresnet"
# arcface_torch: every BatchNorm is built with eps=1e-05 (BatchNorm2d and the BatchNorm1d
# `features`), and every stage starts with a stride-2 block.
BN_EPS = 1e-5
FEATURES_EPS = 1e-5
STAGE_STRIDE = 2
# Blocks per stage of the named depths in arcface_torch's iresnet.py.
DEPTHS = {(2, 2, 2, 2): 18, (3, 4, 6, 3): 34, (3, 4, 14, 3): 50, (3, 13, 30, 3): 100,
          (6, 26, 60, 6): 200}


def conv_kernel(table: TensorTable, key: str, shape_oihw: tuple[int, ...]) -> np.ndarray:
  """torch conv weight [O, I, kh, kw] -> Flax kernel [kh, kw, I, O]."""
  return table.take(key, shape_oihw).transpose(2, 3, 1, 0)


def batch_norm(table: TensorTable, prefix: str, c: int) -> dict:
  """torch BatchNorm{1,2}d running statistics and affine parameters -> layers.BatchNorm."""
  return {"scale": table.take(f"{prefix}.weight", (c,)), "bias": table.take(f"{prefix}.bias", (c,)),
          "mean": table.take(f"{prefix}.running_mean", (c,)),
          "var": table.take(f"{prefix}.running_var", (c,))}


def prelu(table: TensorTable, key: str, c: int) -> dict:
  """torch PReLU(C) weight [C] -> layers.PReLU alpha [C]."""
  return {"alpha": table.take(key, (c,))}


def shape_of(state: Mapping[str, Any], key: str, source: str) -> tuple[int, ...]:
  """Shape of ``state[key]``, or a ConversionError naming the missing tensor."""
  if key not in state:
    raise ConversionError(f"{source}: tensor '{key}' is missing")
  return tuple(np.shape(state[key]))


def is_ignored(key: str) -> bool:
  """BatchNorm's batch counters carry no inference information."""
  return key.endswith("num_batches_tracked")


def _state_dict(obj: Any, source: str) -> dict:
  return unwrap_state_dict(obj, source, "arcface_torch IResNet", ('conv1.weight', 'layer1.0.conv1.weight'))


def infer_meta(state: Mapping[str, Any], source: str) -> dict:
  """Architecture hyper-parameters read from the tensor names and shapes."""
  blocks = {}
  for key in state:
    m = re.match(r"layer(\d+)\.(\d+)\.conv1\.weight$", key)
    if m:
      blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
  n_stages = max(blocks)
  if sorted(blocks) != list(range(1, n_stages + 1)) or any(
      sorted(b) != list(range(len(b))) for b in blocks.values()):
    raise ConversionError(f"{source}: residual stages/blocks are not numbered contiguously")
  layers = [len(blocks[i]) for i in range(1, n_stages + 1)]
  widths = [shape_of(state, f"layer{i}.0.conv1.weight", source)[0] for i in range(1, n_stages + 1)]
  stem_width = shape_of(state, "conv1.weight", source)[0]
  fc = shape_of(state, "fc.weight", source)
  if len(fc) != 2:
    raise ConversionError(f"{source}: 'fc.weight' has shape {fc}, expected 2-D")
  embedding_size, fc_in = fc
  side = math.isqrt(fc_in // widths[-1])
  if side * side * widths[-1] != fc_in:
    raise ConversionError(f"{source}: 'fc.weight' input width {fc_in} is not {widths[-1]} "
                          "channels times a square feature map")
  return {"layers": layers, "widths": widths, "stem_width": stem_width,
          "embedding_size": embedding_size, "strides": [STAGE_STRIDE] * n_stages,
          "input_size": side * STAGE_STRIDE ** n_stages, "feature_map": side,
          "bn_eps": BN_EPS, "features_eps": FEATURES_EPS,
          "depth": DEPTHS.get(tuple(layers)), "source": os.path.basename(source)}


def convert(obj: Any, source: str) -> tuple[dict, dict]:
  """Converts a loaded arcface_torch checkpoint to ``(params, meta)`` for sair_jax.nets.arcface."""
  state = _state_dict(obj, source)
  meta = infer_meta(state, source)
  table = TensorTable(state, source, ignore=is_ignored)
  stem = meta["stem_width"]
  params = {"conv1": {"kernel": conv_kernel(table, "conv1.weight", (stem, 3, 3, 3))},
            "bn1": batch_norm(table, "bn1", stem),
            "prelu": prelu(table, "prelu.weight", stem)}
  cin = stem
  for i, (n, width, stride) in enumerate(zip(meta["layers"], meta["widths"], meta["strides"])):
    for j in range(n):
      p = f"layer{i + 1}.{j}"
      s = stride if j == 0 else 1
      block = {"bn1": batch_norm(table, f"{p}.bn1", cin),
               "conv1": {"kernel": conv_kernel(table, f"{p}.conv1.weight", (width, cin, 3, 3))},
               "bn2": batch_norm(table, f"{p}.bn2", width),
               "prelu": prelu(table, f"{p}.prelu.weight", width),
               "conv2": {"kernel": conv_kernel(table, f"{p}.conv2.weight", (width, width, 3, 3))},
               "bn3": batch_norm(table, f"{p}.bn3", width)}
      if s != 1 or cin != width:  # the same rule torch's _make_layer uses to build `downsample`
        block["downsample_0"] = {
            "kernel": conv_kernel(table, f"{p}.downsample.0.weight", (width, cin, 1, 1))}
        block["downsample_1"] = batch_norm(table, f"{p}.downsample.1", width)
      params[f"layer{i + 1}_{j}"] = block
      cin = width
  params["bn2"] = batch_norm(table, "bn2", cin)
  d, side = meta["embedding_size"], meta["feature_map"]
  fc = table.take("fc.weight", (d, cin * side * side))
  # torch flattens the last feature map in (c, h, w) order, the Flax module in (h, w, c) order:
  # [D, C*H*W] -> [D, C, H, W] -> [H, W, C, D] -> [H*W*C, D] (rows permuted, then transposed).
  fc = fc.reshape(d, cin, side, side).transpose(2, 3, 1, 0).reshape(side * side * cin, d)
  params["fc"] = {"kernel": fc, "bias": table.take("fc.bias", (d,))}
  params["features"] = batch_norm(table, "features", d)
  table.finish()
  return params, meta


def describe(meta: dict) -> str:
  """What was converted, for the command's success line."""
  depth = f"IResNet-{meta['depth']}" if meta["depth"] else f"IResNet {meta['layers']}"
  return f"{depth}, {meta['embedding_size']}-d features"


convert_file, cli = torch_file_converter(convert, KIND, describe)

if __name__ == "__main__":
  src_dst_program(cli, "arcface_torch IResNet state dict (e.g. iresnet50.pth)")
