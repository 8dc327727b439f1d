"""2-D convolution (NHWC, HWIO) whose gradient stays an ordinary convolution on every backend.

Every convolution the restoration step differentiates (StyleGAN2's synthesis, ArcFace) goes
through :func:`conv2d`. The forward pass is ``lax.conv_general_dilated``; what differs is the
gradient with respect to the input, the only one the solver needs (the networks are frozen):

* JAX's own rule gives a convolution whose kernel has its input and output axes swapped in the
  dimension labels (``01oi``) and, for a strided convolution, an input dilated with zeros
  (``lhs_dilation``). XLA:CPU sends a convolution to its fast library (Eigen) only in the
  canonical ``01io`` form, and puts it in that form outside loops but not inside them: inside
  the solver's ``lax.scan`` every backward convolution ran in XLA's naive loop emitter, half
  of the step's convolutions at a fraction of the speed (the identity term cost 2x its
  stand-alone time; see ``benchmarks/step_profile.py``).
* Here a stride-1 convolution has a custom VJP: the input gradient is the output gradient
  convolved with the kernel flipped and its I/O axes swapped *as an array* (HWIO again), with
  padding ``(k - 1 - lo, k - 1 - hi)``. The weight gradient is JAX's own (unused in the solver,
  so XLA drops it; correct for anyone who differentiates the weights).
* A stride-2 convolution is the sum of its four polyphase parts: ``x[p::2, q::2]`` convolved
  at stride 1 with the taps ``w[a::2, b::2]`` that meet that phase. That is exactly k*k
  multiply-adds per output pixel, and its gradient is four stride-1 gradients, interleaved:
  no multiplication by an inserted zero (JAX's rule multiplies three zeros for every useful
  product at stride 2).

Both forms compute the same values as ``lax.conv_general_dilated`` (tests check values and
gradients against it); only the programs XLA builds differ.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
from jax import lax

Padding = tuple[tuple[int, int], tuple[int, int]]
_DN = ("NHWC", "HWIO", "NHWC")


def _lax_conv(x: jax.Array, w: jax.Array, padding: Padding) -> jax.Array:
  return lax.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=_DN)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_s1(x: jax.Array, w: jax.Array, padding: Padding) -> jax.Array:
  return _lax_conv(x, w, padding)


def _conv_s1_fwd(x, w, padding):
  return _lax_conv(x, w, padding), (x, w)


def _conv_s1_bwd(padding, residuals, dy):
  x, w = residuals
  kh, kw = w.shape[:2]
  (top, bottom), (left, right) = padding
  # dx[n] = sum_t dy[n + lo - t] w[t]: a correlation of dy with the flipped kernel, its input
  # and output channels swapped (materialised HWIO, so XLA keeps the canonical form).
  w_t = jnp.transpose(w[::-1, ::-1], (0, 1, 3, 2)).astype(dy.dtype)  # [kh, kw, O, I]
  dx = _lax_conv(dy, w_t, ((kh - 1 - top, kh - 1 - bottom), (kw - 1 - left, kw - 1 - right)))
  _, w_vjp = jax.vjp(lambda w: _lax_conv(x, w, padding), w)
  return dx.astype(x.dtype), w_vjp(dy)[0]


_conv_s1.defvjp(_conv_s1_fwd, _conv_s1_bwd)


def _phase_1d(n: int, k: int, lo: int, hi: int, parity: int):
  """One axis of a stride-2 convolution split by the parity of the input position.

  Output m reads input 2m + t - lo at tap t. Taps with (t - lo) of ``parity`` read the
  sub-sampled input ``x[parity::2]`` at offsets m + a, consecutive for t = t0, t0 + 2, ...
  Returns (first tap t0, number of taps, (pad_lo, pad_hi) of the stride-1 correlation of the
  sub-sampled input with those taps), or None when no tap has that parity.
  """
  t0 = (lo + parity) % 2
  n_taps = len(range(t0, k, 2))
  n_sub = len(range(parity, n, 2))
  if not n_taps or not n_sub:
    return None
  m_out = (n + lo + hi - k) // 2 + 1
  pad_lo = -((t0 - lo - parity) // 2)
  pad_hi = m_out - n_sub - pad_lo + n_taps - 1
  return t0, n_taps, (pad_lo, pad_hi)


def _polyphase_s2(x: jax.Array, w: jax.Array, padding: Padding) -> jax.Array:
  """A stride-2 convolution as the sum of its (up to) four stride-1 polyphase parts."""
  (top, bottom), (left, right) = padding
  kh, kw = w.shape[:2]
  out = None
  for p in range(2):
    rows = _phase_1d(x.shape[1], kh, top, bottom, p)
    for q in range(2):
      cols = _phase_1d(x.shape[2], kw, left, right, q)
      if rows is None or cols is None:
        continue
      (r0, nr, pad_r), (c0, nc, pad_c) = rows, cols
      part = _conv_s1(x[:, p::2, q::2], w[r0:r0 + 2 * nr - 1:2, c0:c0 + 2 * nc - 1:2],
                      (pad_r, pad_c))
      out = part if out is None else out + part
  return out


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_s2(x: jax.Array, w: jax.Array, padding: Padding) -> jax.Array:
  # Forward: the library's strided convolution (as fast as the polyphase sum, one call).
  return lax.conv_general_dilated(x, w, (2, 2), padding, dimension_numbers=_DN)


def _conv_s2_fwd(x, w, padding):
  return _conv_s2(x, w, padding), (x, w)


def _conv_s2_bwd(padding, residuals, dy):
  # Backward: the gradient of the polyphase sum, four stride-1 gradients, no inserted zeros.
  x, w = residuals
  _, vjp = jax.vjp(lambda x, w: _polyphase_s2(x, w, padding), x, w)
  return vjp(dy)


_conv_s2.defvjp(_conv_s2_fwd, _conv_s2_bwd)


def conv2d(x: jax.Array, w: jax.Array, stride: int = 1,
           padding: Sequence[Sequence[int]] = ((0, 0), (0, 0))) -> jax.Array:
  """``lax.conv_general_dilated(x, w, (stride, stride), padding)`` in NHWC / HWIO.

  Args:
    x: [B, H, W, I].
    w: [kh, kw, I, O] (cross-correlation, as torch and lax).
    stride: 1 or 2 (the gradients above); any other stride uses lax's own gradient.
    padding: ((top, bottom), (left, right)), zero padding (negative values crop).
  Returns:
    [B, (H + top + bottom - kh) // stride + 1, (same for W), O].
  """
  padding = tuple((int(a), int(b)) for a, b in padding)
  if stride == 1:
    return _conv_s1(x, w, padding)
  if stride == 2:
    return _conv_s2(x, w, padding)
  return lax.conv_general_dilated(x, w, (stride, stride), padding, dimension_numbers=_DN)
