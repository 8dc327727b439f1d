"""Converts an encoder4editing checkpoint (``e4e_ffhq_encode.pt``) to sair_jax.

    python -m converters.e4e --src e4e_ffhq_encode.pt --dst checkpoints/e4e-ffhq

The file is a dict: ``state_dict`` (the pSp wrapper's tensors: ``encoder.*`` is converted,
``decoder.*`` — the StyleGAN2 generator, converted separately — is ignored), ``latent_avg``
([n_styles, w_dim] or [w_dim]; added to the encoder's output) and ``opts``.

The architecture is read from the tensors: the body blocks (``encoder.body.{i}``; a stage
starts, with stride 2, at block 0 and wherever the width changes, as in e4e's ``get_blocks``
for IR-SE-50/100/152), the SE widths, the number of styles (``encoder.styles.{i}``), the convs
per style, the style width and the W dimension. The input resolution follows from the coarse
styles' conv count (they reduce the 1/16 map to 1x1: 4 convs <-> 256 px). Tensor conversions
(OIHW -> HWIO etc.) are those of ``converters/arcface.py``; the EqualLinear weight is stored
unscaled (its 1/sqrt(fan_in) factor is applied by the Flax module).
"""

from __future__ import annotations

import os
import re
from typing import Any, Mapping

import numpy as np

from converters.arcface import batch_norm, conv_kernel, is_ignored, prelu, shape_of
from converters.common import ConversionError, TensorTable, src_dst_program, torch_file_converter

KIND = "e4e_encoder"
PREFIX = "encoder."
BN_EPS = 1e-5  # torch BatchNorm2d default, used throughout e4e
TAPS = (6, 20, 23)  # Encoder4Editing.forward: c1, c2, c3 are the outputs of these body blocks
STAGE_STRIDE = 2


def _checkpoint(obj: Any, source: str) -> tuple[dict, Any, Any]:
  """(state_dict, latent_avg or None, opts or None) of an e4e checkpoint, or a ConversionError."""
  if not isinstance(obj, Mapping) or not isinstance(obj.get("state_dict"), Mapping):
    found = sorted(map(str, obj))[:3] if isinstance(obj, Mapping) else type(obj).__name__
    raise ConversionError(f"{source}: not an e4e checkpoint (expected a dict with 'state_dict'; "
                          f"found {found})")
  state = dict(obj["state_dict"])
  if f"{PREFIX}input_layer.0.weight" not in state:
    raise ConversionError(f"{source}: not an e4e checkpoint (no '{PREFIX}input_layer.0.weight' "
                          f"in its state_dict; found keys like {sorted(map(str, state))[:3]})")
  opts = obj.get("opts")
  return state, obj.get("latent_avg"), opts if isinstance(opts, Mapping) else None


def _count(state: Mapping[str, Any], pattern: str, source: str) -> int:
  """Number of indices captured by ``pattern`` over the keys (which must be 0, 1, .., n-1)."""
  found = {int(m.group(1)) for m in map(re.compile(pattern).match, state) if m}
  if found != set(range(len(found))):
    raise ConversionError(f"{source}: indices of '{pattern}' are not contiguous from 0")
  return len(found)


def _style_convs(state: Mapping[str, Any], i: int, source: str) -> int:
  """Number of convs of style block ``i``: they sit at the even indices 0, 2, .. of its
  ``convs`` Sequential (a LeakyReLU at each odd index)."""
  pattern = re.compile(rf"encoder\.styles\.{i}\.convs\.(\d+)\.weight$")
  found = sorted(int(m.group(1)) for m in map(pattern.match, state) if m)
  if not found or found != list(range(0, 2 * len(found), 2)):
    raise ConversionError(f"{source}: style block {i} has convs at {found}, expected 0, 2, 4, ..")
  return len(found)


def infer_meta(state: Mapping[str, Any], source: str) -> dict:
  """Architecture hyper-parameters read from the tensor names and shapes."""
  e = PREFIX
  stem = shape_of(state, f"{e}input_layer.0.weight", source)[0]
  n_blocks = _count(state, r"encoder\.body\.(\d+)\.res_layer\.1\.weight$", source)
  if n_blocks <= max(TAPS):
    raise ConversionError(f"{source}: e4e needs at least {max(TAPS) + 1} body blocks "
                          f"(features are tapped after blocks {list(TAPS)}), found {n_blocks}")
  blocks, cin = [], stem
  for i in range(n_blocks):
    depth = shape_of(state, f"{e}body.{i}.res_layer.1.weight", source)[0]
    se_hidden = shape_of(state, f"{e}body.{i}.res_layer.5.fc1.weight", source)[0]
    stride = STAGE_STRIDE if i == 0 or depth != cin else 1
    blocks.append([depth, stride, se_hidden])
    cin = depth
  n_styles = _count(state, r"encoder\.styles\.(\d+)\.linear\.weight$", source)
  if n_styles < 1:
    raise ConversionError(f"{source}: no style blocks ('{e}styles.0.linear.weight')")
  style_convs = [_style_convs(state, i, source) for i in range(n_styles)]
  # Coarse styles (c3, 1/16) need k convs, middle ones (p2, 1/8) k + 1, fine ones (p1) k + 2.
  k = style_convs[0]
  coarse = sum(1 for n in style_convs if n == k)
  middle = coarse + sum(1 for n in style_convs if n == k + 1)
  expected = [k] * coarse + [k + 1] * (middle - coarse) + [k + 2] * (n_styles - middle)
  if style_convs != expected:
    raise ConversionError(f"{source}: style blocks have {style_convs} convs; expected coarse, "
                          "middle and fine groups with one more conv each")
  style_channels, w_dim = (shape_of(state, f"{e}styles.0.convs.0.weight", source)[0],
                           shape_of(state, f"{e}styles.0.linear.weight", source)[0])
  return {"stem_width": stem, "blocks": blocks, "style_convs": style_convs,
          "style_channels": style_channels, "w_dim": w_dim, "n_styles": n_styles,
          "taps": list(TAPS), "coarse": coarse, "middle": middle, "bn_eps": BN_EPS,
          "input_size": 16 * 2 ** k, "source": os.path.basename(source)}


def _latent_avg(latent_avg: Any, opts: Any, meta: dict, source: str) -> np.ndarray:
  """``latent_avg`` as [n_styles, w_dim] float32 (zeros when opts say it is not used)."""
  n, w = meta["n_styles"], meta["w_dim"]
  if opts is not None and opts.get("start_from_latent_avg") is False:
    return np.zeros((n, w), np.float32)
  if latent_avg is None:
    raise ConversionError(f"{source}: 'latent_avg' is missing (e4e adds it to every code)")
  avg = np.asarray(latent_avg)
  if avg.dtype.kind != "f" or avg.shape not in ((n, w), (1, w), (w,)):
    raise ConversionError(f"{source}: 'latent_avg' has shape {avg.shape} ({avg.dtype}), "
                          f"expected ({n}, {w}) or ({w},)")
  return np.broadcast_to(avg.astype(np.float32).reshape(-1, w), (n, w)).copy()


def convert(obj: Any, source: str) -> tuple[dict, dict]:
  """Converts a loaded e4e checkpoint into ``(params, meta)`` for sair_jax.nets.e4e."""
  state, latent_avg, opts = _checkpoint(obj, source)
  meta = infer_meta(state, source)
  table = TensorTable(state, source,
                      ignore=lambda k: k.startswith("decoder.") or is_ignored(k))
  e, stem = PREFIX, meta["stem_width"]
  params = {"input_layer_0": {"kernel": conv_kernel(table, f"{e}input_layer.0.weight",
                                                    (stem, 3, 3, 3))},
            "input_layer_1": batch_norm(table, f"{e}input_layer.1", stem),
            "input_layer_2": prelu(table, f"{e}input_layer.2.weight", stem)}
  cin = stem
  for i, (depth, _, hidden) in enumerate(meta["blocks"]):
    p = f"{e}body.{i}"
    block = {"res_layer_0": batch_norm(table, f"{p}.res_layer.0", cin),
             "res_layer_1": {"kernel": conv_kernel(table, f"{p}.res_layer.1.weight",
                                                   (depth, cin, 3, 3))},
             "res_layer_2": prelu(table, f"{p}.res_layer.2.weight", depth),
             "res_layer_3": {"kernel": conv_kernel(table, f"{p}.res_layer.3.weight",
                                                   (depth, depth, 3, 3))},
             "res_layer_4": batch_norm(table, f"{p}.res_layer.4", depth),
             # SE 1x1 convs act on the pooled vector: [O, I, 1, 1] -> dense kernel [I, O].
             "res_layer_5": {
                 "fc1": {"kernel": table.take(f"{p}.res_layer.5.fc1.weight",
                                              (hidden, depth, 1, 1))[:, :, 0, 0].T},
                 "fc2": {"kernel": table.take(f"{p}.res_layer.5.fc2.weight",
                                              (depth, hidden, 1, 1))[:, :, 0, 0].T}}}
    if cin != depth:  # torch uses a 1x1 conv + BN shortcut exactly then (MaxPool2d otherwise)
      block["shortcut_layer_0"] = {"kernel": conv_kernel(table, f"{p}.shortcut_layer.0.weight",
                                                         (depth, cin, 1, 1))}
      block["shortcut_layer_1"] = batch_norm(table, f"{p}.shortcut_layer.1", depth)
    params[f"body_{i}"] = block
    cin = depth
  c1, c2, c3 = (meta["blocks"][t][0] for t in meta["taps"])
  ch, w_dim = meta["style_channels"], meta["w_dim"]
  for i, n in enumerate(meta["style_convs"]):
    # Every style reads a map of c3's width (c3 itself, or p2 / p1 after the lateral adds).
    p, style = f"{e}styles.{i}", {}
    for j in range(n):
      width_in = c3 if j == 0 else ch
      style[f"convs_{2 * j}"] = {
          "kernel": conv_kernel(table, f"{p}.convs.{2 * j}.weight", (ch, width_in, 3, 3)),
          "bias": table.take(f"{p}.convs.{2 * j}.bias", (ch,))}
    # EqualLinear weight [O, I] -> kernel [I, O]; the 1/sqrt(I) scale stays in the module.
    style["linear"] = {"kernel": table.take(f"{p}.linear.weight", (w_dim, ch)).T,
                       "bias": table.take(f"{p}.linear.bias", (w_dim,))}
    params[f"styles_{i}"] = style
  # Laterals map c2 / c1 to c3's width so they can be added to the upsampled coarser map.
  if meta["n_styles"] > meta["coarse"]:
    params["latlayer1"] = {"kernel": conv_kernel(table, f"{e}latlayer1.weight", (c3, c2, 1, 1)),
                           "bias": table.take(f"{e}latlayer1.bias", (c3,))}
  if meta["n_styles"] > meta["middle"]:
    params["latlayer2"] = {"kernel": conv_kernel(table, f"{e}latlayer2.weight", (c3, c1, 1, 1)),
                           "bias": table.take(f"{e}latlayer2.bias", (c3,))}
  table.finish()
  params["latent_avg"] = _latent_avg(latent_avg, opts, meta, source)
  return params, meta


def describe(meta: dict) -> str:
  """What was converted, for the command's success line."""
  return (f"e4e encoder ({len(meta['blocks'])} IR-SE blocks, "
          f"{meta['n_styles']} x {meta['w_dim']} W+)")


convert_file, cli = torch_file_converter(convert, KIND, describe)

if __name__ == "__main__":
  src_dst_program(cli, "encoder4editing checkpoint (e.g. e4e_ffhq_encode.pt)")
