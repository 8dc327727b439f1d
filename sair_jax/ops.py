"""Pure array ops of the StyleGAN2 generator: equalised linear, modulated conv, FIR upsampling.

All functions are NHWC / HWIO, batch-major, and free of Python loops over the batch, so that
``jit``, ``vmap`` and ``grad`` (to the styles) trace them into a handful of XLA convolutions.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

SQRT2 = math.sqrt(2.0)
_DN = ("NHWC", "HWIO", "NHWC")


def lrelu_gain(x: jax.Array, bias: jax.Array | None = None) -> jax.Array:
  """StyleGAN's activation: leaky ReLU (slope 0.2) after adding ``bias``, times sqrt(2)."""
  if bias is not None:
    x = x + bias.astype(x.dtype)
  return jnp.where(x >= 0, x, 0.2 * x) * jnp.asarray(SQRT2, x.dtype)


def normalize_2nd_moment(x: jax.Array, eps: float = 1e-8) -> jax.Array:
  """Pixel norm over the last axis: ``x / sqrt(mean(x^2) + eps)``."""
  return x * lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + eps)


def fold_fir_into_kernel(weight: jax.Array, fir: jax.Array) -> jax.Array:
  """Full 2-D convolution of every ``weight[:, :, i, o]`` with ``fir``.

  Args:
    weight: [kh, kw, I, O] kernel.
    fir: [fh, fw] filter.
  Returns:
    [kh + fh - 1, kw + fw - 1, I, O]: applying it equals applying ``weight`` then ``fir``.
  """
  kh, kw = weight.shape[:2]
  fh, fw = fir.shape
  out = 0.0
  for a in range(fh):  # fh * fw shifted copies of the (small) kernel, not of activations
    for b in range(fw):
      shifted = jnp.pad(weight, ((a, fh - 1 - a), (b, fw - 1 - b), (0, 0), (0, 0)))
      out = out + fir[a, b] * shifted
  return out


def _upconv_polyphase(x: jax.Array, kernel: jax.Array, lo: int) -> jax.Array:
  """``conv(dilate2(x), kernel, padding=(lo, K - lo))`` as one stride-1 conv at the input size.

  Of the K x K taps, each of the four output phases (row parity p, column parity q) meets the
  non-zero samples of the 2x-dilated input only at every other tap. So the same result is one
  ordinary convolution of ``x`` with the four phase sub-kernels stacked along the output
  channels, followed by a depth-to-space shuffle: no multiplications by inserted zeros, and plain
  stride-1 convolutions forward and backward on every backend.

  Args:
    x: [B, H, W, I].
    kernel: [K, K, I, O], correlation form.
    lo: leading padding of the dilated input (output is 2H x 2W).
  Returns:
    [B, 2H, 2W, O].
  """
  size = kernel.shape[0]
  # Output 2m + p reads dilated sample 2m + p + t - lo, i.e. x[m + (p + t - lo) / 2] when even.
  phase_taps = []  # per parity p: (first tap t0, x offset of that tap, number of taps)
  for p in range(2):
    t0 = (lo - p) % 2
    phase_taps.append((t0, (p + t0 - lo) // 2, len(range(t0, size, 2))))
  first = min(off for _, off, _ in phase_taps)
  last = max(off + n - 1 for _, off, n in phase_taps)
  window = last - first + 1

  def sub_kernel_1d(p):  # [window, K] selection matrix of phase p
    t0, off, n = phase_taps[p]
    sel = np.zeros((window, size), np.float32)
    for i in range(n):
      sel[off - first + i, t0 + 2 * i] = 1.0
    return sel

  sel = lambda p: jnp.asarray(sub_kernel_1d(p), kernel.dtype)
  subs = [jnp.einsum("ak,bl,klio->abio", sel(p), sel(q), kernel)
          for p in range(2) for q in range(2)]  # 4 x [window, window, I, O]
  stacked = jnp.concatenate(subs, axis=-1)  # [window, window, I, 4*O], phase (p, q) major
  b, h, w, _ = x.shape
  cout = kernel.shape[-1]
  pad = (-first, last)  # x[m + first .. m + last] for every m in [0, H)
  y = lax.conv_general_dilated(x, stacked, (1, 1), (pad, pad), dimension_numbers=_DN)
  y = y.reshape(b, h, w, 2, 2, cout).transpose(0, 1, 3, 2, 4, 5)  # [B, H, p, W, q, O]
  return y.reshape(b, 2 * h, 2 * w, cout)


def modulated_conv2d(
    x: jax.Array,  # [B, H, W, I]
    weight: jax.Array,  # [k, k, I, O], equalised-lr scale already applied
    styles: jax.Array,  # [B, I]
    *,
    demodulate: bool = True,
    up_fir: jax.Array | None = None,  # [f, f] FIR filter (gain included) for 2x upsampling
    dtype=jnp.float32,
) -> jax.Array:
  """StyleGAN2 modulated convolution, as one ordinary convolution for the whole batch.

  Modulating the weight per sample (``W * s_i``) and demodulating the result per output channel
  is the same as scaling the *input* channels by the style, convolving with the shared weight
  and scaling the *output* channels by ``1/sqrt(sum_{i,k} (W s_i)^2 + 1e-8)``: no per-sample
  kernels, no grouped convolution.

  With ``up_fir`` the layer is rosinality's transposed 3x3 convolution (stride 2) followed by
  the FIR blur (pad 1, 1). Both are linear and shift-invariant, so they are folded into a single
  (k+f-1)^2 kernel applied as one lhs-dilated convolution; the padding ``(k+f-1)//2`` on each side
  selects exactly the 2H x 2W window the two-step version keeps; the folded transposed conv is
  then evaluated in polyphase form (:func:`_upconv_polyphase`).

  Returns:
    [B, H', W', O] in ``dtype``; H' = 2H with ``up_fir``, else H.
  """
  k = weight.shape[0]
  styles = styles.astype(jnp.float32)
  if demodulate:
    # sum_{kh,kw,i} (W[kh,kw,i,o] s_i)^2 = sum_i s_i^2 * sum_{kh,kw} W[kh,kw,i,o]^2
    wsq = jnp.sum(jnp.square(weight.astype(jnp.float32)), axis=(0, 1))  # [I, O]
    dcoefs = lax.rsqrt(jnp.square(styles) @ wsq + 1e-8)  # [B, O]
  x = x * styles[:, None, None, :].astype(dtype)
  if up_fir is None:
    pad = k // 2
    out = lax.conv_general_dilated(
        x, weight.astype(dtype), (1, 1), ((pad, pad), (pad, pad)), dimension_numbers=_DN)
  else:
    # A transposed conv is a *true* convolution of the zero-dilated input; as XLA correlates,
    # the folded kernel is flipped spatially.
    f = up_fir.shape[0]
    folded = fold_fir_into_kernel(weight, up_fir.astype(weight.dtype))[::-1, ::-1]
    # rosinality pads the transposed conv's (2H + k - 2) output by blur_pad0 = (p + 1) // 2 + 1,
    # p = f - 2 - (k - 1), before the f-tap blur; on the dilated input (2H - 1 long) that is
    # k - 1 + blur_pad0 in front, and whatever makes the output 2H long behind.
    lo = k - 1 + (f - 2 - (k - 1) + 1) // 2 + 1
    out = _upconv_polyphase(x, folded.astype(dtype), lo)
  if demodulate:
    out = out * dcoefs[:, None, None, :].astype(dtype)
  return out


def upsample2x_fir(x: jax.Array, fir: jax.Array) -> jax.Array:
  """Zero-insert 2x upsampling followed by the FIR ``fir`` (gain included), per channel.

  Matches rosinality's ``upfirdn2d(x, fir, up=2, pad=(2, 1))`` for a 4-tap filter: the zeros XLA's
  ``lhs_dilation`` leaves out after the last sample are made up by one extra row of padding.

  Args:
    x: [B, H, W, C].
    fir: [f, f].
  Returns:
    [B, 2H, 2W, C].
  """
  c = x.shape[-1]
  f = fir.shape[0]
  pad_lo = (f - 2 + 1) // 2 + 1  # rosinality: p = f - 2; pad0 = (p + 1) // 2 + factor - 1
  pad_hi = (f - 2) // 2 + 1  # pad1 = p // 2, plus the trailing zero of the last sample
  kernel = jnp.tile(fir[::-1, ::-1, None, None].astype(x.dtype), (1, 1, 1, c))  # [f, f, 1, C]
  return lax.conv_general_dilated(
      x, kernel, (1, 1), ((pad_lo, pad_hi), (pad_lo, pad_hi)), lhs_dilation=(2, 2),
      dimension_numbers=_DN, feature_group_count=c)
