"""Converts LPIPS v0.1 (AlexNet variant) to sair_jax: torchvision AlexNet + LPIPS's linear layers.

    python -m converters.lpips --alexnet alexnet-owt-7be5be79.pth --lin alex.pth \
        --dst checkpoints/lpips-alex

* ``--alexnet``: torchvision's ImageNet AlexNet state dict (``features.{0,3,6,8,10}.weight/bias``;
  the ``classifier.*`` tensors are ignored: LPIPS uses the five ReLU taps of ``features`` only).
* ``--lin``: LPIPS's learned 1x1 linear layers, ``lpips/weights/v0.1/alex.pth`` inside the PyPI
  ``lpips`` wheel (``pip download --no-deps lpips`` and unzip it; the package is not needed at run
  time). Keys ``lin{k}.model.1.weight`` [1, C_k, 1, 1], no bias (``model.0`` is a dropout).

The widths of the five convolutions are read from the tensors and must agree with the linear
layers. Tensor conversions:
  conv weight [O, I, kh, kw] -> kernel [kh, kw, I, O]   (OIHW -> HWIO); bias [O] unchanged
  lin weight  [1, C, 1, 1]   -> w [C]
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np
from absl import app, flags

from converters.common import ConversionError, TensorTable, read_source, run_cli
from sair_jax.nets import alexnet

KIND = "lpips_alex"
VERSION = "0.1"


def _state(obj: Any, source: str, what: str, probe: str) -> dict:
  """The state dict inside ``obj`` (plain, or under 'state_dict'), with any 'module.' prefix
  removed; refuses a file without the tensor ``probe``."""
  if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
    obj = obj["state_dict"]
  if not isinstance(obj, Mapping):
    raise ConversionError(f"{source}: not a {what} state dict (holds a {type(obj).__name__})")
  state = dict(obj)
  if state and all(isinstance(k, str) and k.startswith("module.") for k in state):
    state = {k[len("module."):]: v for k, v in state.items()}
  if probe not in state:
    raise ConversionError(f"{source}: not a {what} (no '{probe}'; found keys like "
                          f"{sorted(map(str, state))[:3]})")
  return state


def convert(alexnet_obj: Any, lin_obj: Any, alexnet_source: str, lin_source: str
            ) -> tuple[dict, dict]:
  """Converts loaded AlexNet and LPIPS-lin files to ``(params, meta)`` for metrics.lpips."""
  net = _state(alexnet_obj, alexnet_source, "torchvision AlexNet", "features.0.weight")
  lin = _state(lin_obj, lin_source, "LPIPS v0.1 linear-layer file", "lin0.model.1.weight")
  net_table = TensorTable(net, alexnet_source, ignore=lambda k: k.startswith("classifier."))
  lin_table = TensorTable(lin, lin_source)
  params = {"net": {}, "lin": {}}
  widths, cin = [], 3
  for i, (index, (k, _, _, _)) in enumerate(zip(alexnet.TORCH_INDEX, alexnet.CONVS)):
    key = f"features.{index}.weight"
    if not net_table.has(key):
      raise ConversionError(f"{alexnet_source}: tensor '{key}' is missing")
    cout = int(np.shape(net[key])[0])
    w = net_table.take(key, (cout, cin, k, k))
    params["net"][f"conv{i + 1}"] = {
        "kernel": w.transpose(2, 3, 1, 0),  # OIHW -> HWIO
        "bias": net_table.take(f"features.{index}.bias", (cout,))}
    params["lin"][f"lin{i}"] = {"w": lin_table.take(f"lin{i}.model.1.weight",
                                                    (1, cout, 1, 1)).reshape(cout)}
    widths.append(cout)
    cin = cout
  net_table.finish()
  lin_table.finish()
  meta = {"widths": widths, "version": VERSION, "backbone": "alexnet",
          "source": os.path.basename(alexnet_source), "lin_source": os.path.basename(lin_source)}
  return params, meta


def convert_files(alexnet_path: str, lin_path: str, dst: str) -> dict:
  """Reads both files, converts them and writes the checkpoint directory ``dst``; returns meta."""
  from sair_jax.io import checkpoint

  params, meta = convert(read_source(alexnet_path), read_source(lin_path), alexnet_path, lin_path)
  checkpoint.save(dst, params, meta, KIND)
  return meta


def cli(alexnet_path: str, lin_path: str, dst: str) -> None:
  """Converts with one-line errors and exit status 1 on failure."""
  def run():
    meta = convert_files(alexnet_path, lin_path, dst)
    print(f"converted LPIPS v{meta['version']} AlexNet (widths {meta['widths']}) -> {dst}")
  run_cli(run)


def main(argv):
  del argv
  cli(flags.FLAGS.alexnet, flags.FLAGS.lin, flags.FLAGS.dst)


if __name__ == "__main__":
  flags.DEFINE_string("alexnet", None, "torchvision AlexNet state dict (alexnet-owt-7be5be79.pth)")
  flags.DEFINE_string("lin", None, "LPIPS v0.1 linear layers (lpips/weights/v0.1/alex.pth)")
  flags.DEFINE_string("dst", None, "output checkpoint directory")
  flags.mark_flags_as_required(["alexnet", "lin", "dst"])
  app.run(main)
