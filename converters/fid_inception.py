"""Converts pytorch-fid's FID-Inception weights to sair_jax.

    python -m converters.fid_inception --src pt_inception-2015-12-05-6726825d.pth \
        --dst checkpoints/fid-inception

The file is pytorch-fid's port of the 2015 TensorFlow Inception graph (a torchvision
Inception-v3 state dict, ``FID_WEIGHTS_URL`` in pytorch-fid's ``inception.py``). Every
``BasicConv2d`` of :mod:`sair_jax.nets.inception` is filled from ``{path}.conv.weight`` and
``{path}.bn.{weight,bias,running_mean,running_var}``; the 1008-way classifier (``fc.*``), an
auxiliary head (``AuxLogits.*``) and BatchNorm's batch counters are ignored: FID uses pool3.
Output widths are read from the tensors; kernel sizes must be the architecture's.

Tensor conversions:
  conv weight [O, I, kh, kw] -> kernel [kh, kw, I, O]   (OIHW -> HWIO)
  BatchNorm   weight, bias, running_mean, running_var -> scale, bias, mean, var
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from converters.common import (ConversionError, TensorTable, src_dst_program, torch_file_converter,
                               unwrap_state_dict)
from sair_jax.io import checkpoint
from sair_jax.metrics import fid
from sair_jax.nets import inception

KIND = "fid_inception"


def is_ignored(key: str) -> bool:
  """Tensors FID does not use: the classifier, an auxiliary head, BatchNorm batch counters."""
  return (key.startswith("fc.") or key.startswith("AuxLogits.")
          or key.endswith("num_batches_tracked"))


def _state_dict(obj: Any, source: str) -> dict:
  return unwrap_state_dict(obj, source, "FID-Inception", ('Conv2d_1a_3x3.conv.weight', 'Mixed_7c.branch_pool.conv.weight'))


def convert(obj: Any, source: str) -> tuple[dict, dict]:
  """Converts a loaded FID-Inception state dict to ``(params, meta)`` for metrics.fid."""
  state = _state_dict(obj, source)
  table = TensorTable(state, source, ignore=is_ignored)
  params: dict = {}
  widths = []
  for path, ((kh, kw), _, _) in inception.conv_specs().items():
    key = f"{path}.conv.weight"
    if not table.has(key):
      raise ConversionError(f"{source}: tensor '{key}' is missing")
    shape = tuple(np.shape(state[key]))
    if len(shape) != 4 or shape[2:] != (kh, kw):
      raise ConversionError(f"{source}: tensor '{key}' has shape {shape}, expected "
                            f"[out, in, {kh}, {kw}]")
    cout = shape[0]
    node = params
    for part in path.split("."):
      node = node.setdefault(part, {})
    node["conv"] = {"kernel": table.take(key, shape).transpose(2, 3, 1, 0)}  # OIHW -> HWIO
    node["bn"] = {"scale": table.take(f"{path}.bn.weight", (cout,)),
                  "bias": table.take(f"{path}.bn.bias", (cout,)),
                  "mean": table.take(f"{path}.bn.running_mean", (cout,)),
                  "var": table.take(f"{path}.bn.running_var", (cout,))}
    widths.append([path, int(cout)])
  table.finish()
  last = ("branch1x1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_3a", "branch3x3dbl_3b",
          "branch_pool")  # the branches Mixed_7c concatenates into pool3
  pool3 = sum(w for k, w in widths if k in {f"Mixed_7c.{b}" for b in last})
  arch = fid.Arch.from_meta({"widths": widths, "pool3_dim": pool3})
  mismatch = checkpoint.shape_mismatch(params, fid.param_shapes(arch))
  if mismatch:  # a conv's input width does not match what the previous layers produce
    raise ConversionError(f"{source}: channel widths do not chain through the network "
                          f"({mismatch})")
  meta = {"widths": widths, "pool3_dim": pool3, "bn_eps": inception.BN_EPS,
          "input_size": inception.INPUT_SIZE, "source": os.path.basename(source)}
  return params, meta


def describe(meta: dict) -> str:
  """What was converted, for the command's success line."""
  return f"FID-Inception ({meta['pool3_dim']}-d pool3)"


convert_file, cli = torch_file_converter(convert, KIND, describe)

if __name__ == "__main__":
  src_dst_program(cli, "pytorch-fid weights (pt_inception-2015-12-05-6726825d.pth)")
