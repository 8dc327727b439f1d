"""LPIPS v0.1, AlexNet variant (Zhang et al. 2018): a learned perceptual distance.

For images ``x0``, ``x1`` in [-1, 1]::

    d(x0, x1) = sum_l  mean_{h,w}  sum_c  w_l[c] * (n(f_l(s(x0))) - n(f_l(s(x1))))[h, w, c]^2

* ``s``: LPIPS's scaling layer, ``(x - shift) / scale`` per RGB channel (:data:`SHIFT`,
  :data:`SCALE`: ImageNet statistics expressed on [-1, 1]).
* ``f_l``: the output of AlexNet's l-th ReLU (``sair_jax.nets.alexnet``), l = 1..5.
* ``n``: unit normalisation over channels, ``f / (||f||_2 + 1e-10)`` at every pixel.
* ``w_l``: the learned non-negative 1x1 linear layer of tap l (no bias).

Usage::

    L = lpips.load("checkpoints/lpips-alex")        # python -m converters.lpips
    d = L.distance(a, b)                            # [B, H, W, 3] in [0, 1] -> [B]
    lpips.apply(L.params, L.arch, x0, x1)           # pure, inputs in [-1, 1], for use inside jit
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from sair_jax.io import checkpoint
from sair_jax.nets import alexnet, layers
from sair_jax.nets.loaded import LoadedNetwork

KIND = "lpips_alex"
SHIFT = (-0.030, -0.088, -0.188)  # LPIPS ScalingLayer, on [-1, 1] inputs
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10  # lpips.normalize_tensor


@dataclasses.dataclass(frozen=True)
class Arch:
  """The AlexNet trunk's widths (hashable), read by the converter, in meta.json."""
  widths: tuple[int, ...]  # output channels of the five tapped convolutions

  def to_meta(self) -> dict:
    return {"widths": list(self.widths)}

  @classmethod
  def from_meta(cls, meta: dict) -> "Arch":
    """From a ``meta.json`` dict (a missing field raises KeyError naming it)."""
    return cls(widths=tuple(int(w) for w in meta["widths"]))


def build(arch: Arch) -> alexnet.AlexNetFeatures:
  """The AlexNet trunk of an :class:`Arch`."""
  return alexnet.AlexNetFeatures(widths=arch.widths)


def param_shapes(arch: Arch) -> Any:
  """Shape tree (tuples) of the parameters of ``arch``."""
  return {"net": layers.param_shapes(build(arch), alexnet.min_input_side()),
          "lin": {f"lin{i}": {"w": (w,)} for i, w in enumerate(arch.widths)}}


def _unit(f):
  """Channel-wise unit normalisation of features [B, H, W, C]."""
  return f / (jnp.sqrt(jnp.sum(f * f, axis=-1, keepdims=True)) + EPS)


def apply(params: Any, arch: Arch, x0, x1, per_layer: bool = False):
  """LPIPS distances [B] of image pairs [B, H, W, 3] in [-1, 1] (pure; use inside jit).

  With ``per_layer=True`` returns the five per-tap terms [5, B] instead of their sum.
  """
  if x0.shape != x1.shape or x0.ndim != 4 or x0.shape[-1] != 3:
    raise ValueError(f"LPIPS expects two image batches [B, H, W, 3] of one shape, got "
                     f"{tuple(x0.shape)} and {tuple(x1.shape)}")
  side = alexnet.min_input_side()
  if min(x0.shape[1:3]) < side:
    raise ValueError(f"LPIPS needs images of at least {side}x{side}, got {tuple(x0.shape[1:3])}")
  shift = jnp.asarray(SHIFT, jnp.float32)
  scale = jnp.asarray(SCALE, jnp.float32)
  b = x0.shape[0]
  x = (jnp.concatenate([x0, x1], axis=0).astype(jnp.float32) - shift) / scale  # [2B, H, W, 3]
  taps = build(arch).apply({"params": params["net"]}, x)
  terms = []
  for i, f in enumerate(taps):  # f: [2B, H_l, W_l, C_l]
    f = _unit(f)
    d = (f[:b] - f[b:]) ** 2  # [B, H_l, W_l, C_l]
    d = jnp.einsum("bhwc,c->bhw", d, params["lin"][f"lin{i}"]["w"],
                   precision=jax.lax.Precision.HIGHEST)
    terms.append(jnp.mean(d, axis=(1, 2)))  # [B]
  terms = jnp.stack(terms)  # [5, B]
  return terms if per_layer else jnp.sum(terms, axis=0)


class LPIPS(LoadedNetwork):
  """A loaded LPIPS model: ``params`` (device arrays), its :class:`Arch`, a jitted distance."""

  def __init__(self, params: Any, arch: Arch):
    super().__init__(params, arch)
    self._apply = self.jit_with_arch(apply)

  def distance_fn(self, params: Any, a01, b01):
    """Pure ``(params, a, b) -> [B]`` on images in [0, 1]."""
    return apply(params, self.arch, 2.0 * a01 - 1.0, 2.0 * b01 - 1.0)

  def distance(self, a01, b01):
    """LPIPS [B] between image batches [B, H, W, 3] in [0, 1] (jitted)."""
    a01, b01 = jnp.asarray(a01, jnp.float32), jnp.asarray(b01, jnp.float32)
    return self._apply(self.params, 2.0 * a01 - 1.0, 2.0 * b01 - 1.0)

  def distance_pm1(self, x0, x1):
    """LPIPS [B] between image batches in [-1, 1] (the lpips package's convention; jitted)."""
    return self._apply(self.params, jnp.asarray(x0, jnp.float32), jnp.asarray(x1, jnp.float32))


def load(dst: str) -> LPIPS:
  """Loads a checkpoint written by ``python -m converters.lpips`` (one-line CheckpointError)."""
  return LPIPS(*checkpoint.load_network(dst, KIND, Arch, param_shapes))
