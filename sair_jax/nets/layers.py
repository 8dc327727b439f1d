"""Small inference-only blocks shared by the networks converted from other frameworks.

Everything is NHWC with HWIO kernels. Batch norm is always in evaluation mode (running
statistics are parameters, never updated), because every network here is a frozen,
pretrained model. Resizing with ``align_corners=True`` is done with small dense interpolation
matrices built in numpy at trace time, which reproduces PyTorch's ``F.interpolate`` sampling
exactly and differentiates like any matrix product.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sair_jax.nets.conv import conv2d

# PyTorch's bicubic kernel (F.interpolate, mode='bicubic') uses Keys' cubic convolution with
# a = -0.75, not the a = -0.5 of PIL/Matlab.
TORCH_BICUBIC_A = -0.75


class Conv(nn.Module):
  """torch ``Conv2d`` (square kernel, symmetric zero padding) on NHWC with an HWIO ``kernel``.

  The parameters are nn.Conv's (``kernel``, ``bias``), so converters fill them the same way;
  the convolution is :func:`sair_jax.nets.conv.conv2d`, whose gradient XLA compiles well
  inside the solver's loop.
  """
  features: int
  kernel_size: int
  stride: int = 1
  padding: int = 0  # explicit, as torch: never 'SAME' (which pads (0, 1) for even inputs at s2)
  use_bias: bool = False

  @nn.compact
  def __call__(self, x):  # [B, H, W, I] -> [B, H', W', features]
    k = self.kernel_size
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (k, k, x.shape[-1], self.features))
    dtype = jnp.promote_types(x.dtype, kernel.dtype)
    pad = (self.padding, self.padding)
    y = conv2d(x.astype(dtype), kernel.astype(dtype), self.stride, (pad, pad))
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(dtype)
    return y


def conv(features: int, kernel_size: int, stride: int = 1, padding: int = 0,
         use_bias: bool = False, name: str | None = None) -> Conv:
  """torch ``Conv2d(.., kernel_size, stride, padding, bias=use_bias)`` as a Flax module."""
  return Conv(features, kernel_size, stride, padding, use_bias, name=name)


class BatchNorm(nn.Module):
  """Evaluation-mode batch norm over the last axis (torch BatchNorm1d/2d with running stats)."""
  eps: float = 1e-5

  @nn.compact
  def __call__(self, x):  # [..., C]
    c = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (c,))
    bias = self.param("bias", nn.initializers.zeros, (c,))
    mean = self.param("mean", nn.initializers.zeros, (c,))
    var = self.param("var", nn.initializers.ones, (c,))
    gain = scale * jax.lax.rsqrt(var + self.eps)  # [C]
    return x * gain + (bias - mean * gain)


class PReLU(nn.Module):
  """torch ``PReLU(C)``: one learned negative slope per channel."""

  @nn.compact
  def __call__(self, x):  # [..., C]
    alpha = self.param("alpha", nn.initializers.constant(0.25), (x.shape[-1],))
    return jnp.where(x >= 0, x, alpha * x)


def _cubic_weight(d: np.ndarray, a: float) -> np.ndarray:
  """Keys' cubic convolution kernel at distance ``d`` (float64)."""
  d = np.abs(d)
  near = ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0  # |d| <= 1
  far = ((a * d - 5.0 * a) * d + 8.0 * a) * d - 4.0 * a  # 1 < |d| < 2
  return np.where(d <= 1.0, near, np.where(d < 2.0, far, 0.0))


def interpolation_matrix(n_in: int, n_out: int, method: str,
                         align_corners: bool = True) -> np.ndarray:
  """[n_out, n_in] float32 matrix of torch's ``F.interpolate(..., align_corners=...)``.

  With ``align_corners=True`` output sample ``o`` sits at input coordinate
  ``o * (n_in - 1) / (n_out - 1)`` (no half-pixel shift; 0 when ``n_out == 1``); with False at
  ``(o + 0.5) * n_in / n_out - 0.5`` (pixel centres; torch clamps a negative coordinate to 0
  for 'bilinear', not for 'bicubic').
  'bilinear': the two neighbours, weights ``1 - t`` and ``t``.
  'bicubic': the four neighbours ``i-1 .. i+2`` of ``i = floor(src)``, weights from the cubic
  kernel with a = -0.75 at distances ``1 + t, t, 1 - t, 2 - t``; neighbours outside the
  image are clamped to the border sample (torch reads them with a clamped index), so their
  weight lands on the edge column. No antialiasing: torch's default ``antialias=False`` samples
  the kernel at its unit width even when downsampling.
  """
  if align_corners:
    src = np.arange(n_out, dtype=np.float64) * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
  else:
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    if method == "bilinear":
      src = np.maximum(src, 0.0)
  base = np.floor(src).astype(np.int64)
  t = src - base
  m = np.zeros((n_out, n_in), np.float64)
  rows = np.arange(n_out)
  if method == "bilinear":
    taps, weights = [0, 1], [1.0 - t, t]
  elif method == "bicubic":
    taps = [-1, 0, 1, 2]
    weights = [_cubic_weight(1.0 + t, TORCH_BICUBIC_A), _cubic_weight(t, TORCH_BICUBIC_A),
               _cubic_weight(1.0 - t, TORCH_BICUBIC_A), _cubic_weight(2.0 - t, TORCH_BICUBIC_A)]
  else:
    raise ValueError(f"unknown interpolation method {method!r}")
  for tap, w in zip(taps, weights):
    np.add.at(m, (rows, np.clip(base + tap, 0, n_in - 1)), w)
  return m.astype(np.float32)


def interpolate(x, size: Sequence[int], method: str, align_corners: bool):
  """torch ``F.interpolate(x, size, mode=method, align_corners=align_corners)`` on NHWC ``x``
  [B, H, W, C] -> [B, size[0], size[1], C] ('bilinear' | 'bicubic'; no antialiasing, as torch's
  default). Differentiable; the weights are static matrices (:func:`interpolation_matrix`)."""
  _, h, w, _ = x.shape  # [B, H, W, C]
  mh = jnp.asarray(interpolation_matrix(h, size[0], method, align_corners))  # [H', H]
  mw = jnp.asarray(interpolation_matrix(w, size[1], method, align_corners))  # [W', W]
  x = jnp.einsum("oh,bhwc->bowc", mh, x)  # [B, H', W, C]
  return jnp.einsum("pw,bowc->bopc", mw, x)  # [B, H', W', C]


def param_shapes(module: nn.Module, side: int, channels: int = 3):
  """Shape tree (tuples) of ``module``'s parameters for [1, side, side, channels] inputs,
  traced with ``jax.eval_shape`` so nothing is allocated; loaders check checkpoints against it."""
  x = jax.ShapeDtypeStruct((1, side, side, channels), jnp.float32)
  tree = jax.eval_shape(module.init, jax.random.PRNGKey(0), x)["params"]
  return jax.tree_util.tree_map(lambda s: tuple(s.shape), tree)
