"""Pure array ops of the StyleGAN2 generator: equalised linear, modulated conv, FIR upsampling.

All functions are NHWC / HWIO, batch-major, and free of Python loops over the batch, so that
``jit``, ``vmap`` and ``grad`` (to the styles) trace them into a handful of XLA convolutions.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from sair_jax.nets.conv import conv2d

SQRT2 = math.sqrt(2.0)


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
  y = conv2d(x, stacked, 1, (pad, pad))
  y = y.reshape(b, h, w, 2, 2, cout).transpose(0, 1, 3, 2, 4, 5)  # [B, H, p, W, q, O]
  return y.reshape(b, 2 * h, 2 * w, cout)


UPCONV_MODES = ("separable", "folded")


def fir_factors(fir: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The 1-D factors (rows [f], cols [f]) of a separable 2-D filter: ``outer(rows, cols) == fir``.

  Every StyleGAN2 filter is an outer product (rosinality's ``make_kernel``); the converter
  refuses any other. Works on traced values: rows are the row sums, cols the column sums over
  the total.
  """
  fir = fir.astype(jnp.float32)
  return jnp.sum(fir, axis=1), jnp.sum(fir, axis=0) / jnp.sum(fir)


def _window(x: jax.Array, start: int, length: int, axis: int) -> jax.Array:
  """``x[start : start + length]`` along ``axis``, reading zeros outside ``x``."""
  n = x.shape[axis]
  lo, hi = max(0, -start), max(0, start + length - n)
  if lo or hi:
    widths = [(0, 0)] * x.ndim
    widths[axis] = (lo, hi)
    x = jnp.pad(x, widths)
  return lax.slice_in_dim(x, start + lo, start + lo + length, axis=axis)


def fir_phases_1d(phases: Sequence[jax.Array | None], taps: jax.Array, *, axis: int, pad0: int,
                  length: int) -> list[jax.Array]:
  """A true convolution with ``taps`` [f], on a signal held as its two polyphase components.

  The signal is ``s[2m + p] = phases[p][m]`` (``None``: a component that is all zeros, as after
  zero-insertion; zeros beyond each component's end). The output ``out[y] = sum_t
  taps[f-1-t] * s[y + t - pad0]`` is returned as its two components too, each ``length``
  long: output parity P reads component ``(P + t - pad0) mod 2`` at offset
  ``(P + t - pad0) // 2``, so each is a sum of shifted slices and no zero is ever multiplied.
  This is rosinality's ``upfirdn2d`` along one axis (``up=2`` when ``phases[1]`` is None), in
  a form XLA fuses with the elementwise work around it.
  """
  f = taps.shape[0]
  flipped = taps[::-1]  # true convolution
  out = []
  for parity in range(2):
    acc = None
    for t in range(f):
      src, offset = (parity + t - pad0) % 2, (parity + t - pad0) // 2
      if phases[src] is None:
        continue
      term = flipped[t].astype(phases[src].dtype) * _window(phases[src], offset, length, axis)
      acc = term if acc is None else acc + term
    out.append(acc)
  return out


def interleave(even: jax.Array, odd: jax.Array, axis: int) -> jax.Array:
  """``out[2m] = even[m]``, ``out[2m + 1] = odd[m]`` along ``axis`` (equal shapes)."""
  y = jnp.stack([even, odd], axis=axis + 1)
  return y.reshape(even.shape[:axis] + (2 * even.shape[axis],) + even.shape[axis + 1:])


def _fir2d_phases(phases: list[list[jax.Array | None]], fir: jax.Array, pad0: int,
                  out_hw: tuple[int, int]) -> jax.Array:
  """2-D FIR (separable ``fir``) on a signal held as its 2x2 polyphase components.

  ``phases[p][q]`` [B, ~H/2, ~W/2, C] is the component at row parity p, column parity q. The
  result, an ordinary [B, H', W', C] array (``out_hw``), is interleaved only once, at the end.
  """
  rows, cols = fir_factors(fir)
  h, w = out_hw
  by_q = [fir_phases_1d([phases[0][q], phases[1][q]], rows, axis=1, pad0=pad0, length=h // 2)
          for q in range(2)]  # [q][P]
  out = [fir_phases_1d([by_q[0][parity], by_q[1][parity]], cols, axis=2, pad0=pad0,
                       length=w // 2) for parity in range(2)]  # [P][Q]: [B, h/2, w/2, C]
  y = jnp.stack([jnp.stack(row, axis=3) for row in out], axis=2)  # [B, h/2, P, w/2, Q, C]
  return y.reshape(y.shape[0], h, w, y.shape[-1])


def transposed_conv2x_phases(x: jax.Array, weight: jax.Array) -> list[list[jax.Array]]:
  """torch ``conv_transpose2d(stride=2, padding=0)`` as its four polyphase components.

  ``T[2i + a, 2j + b] += x[i, j] @ weight[a, b]``. Output phase (p, q) (row and column parity)
  only meets the taps ``a = p, p+2, ...`` and ``b = q, q+2, ...``: it is one ordinary
  stride-1 convolution of ``x`` with that sub-kernel (2x2, 2x1, 1x2 and 1x1 for k = 3), so the
  four convolutions together do exactly the k*k multiply-adds per input pixel of a plain k x k
  convolution at the input size, forward and backward; no zero is multiplied.

  Args:
    x: [B, H, W, I].
    weight: [k, k, I, O] (the layer's weight; as a transposed conv it is not flipped).
  Returns:
    ``phases[p][q]`` = ``T[p::2, q::2]``: [B, H + n_p - 1, W + n_q - 1, O], n_p the number of
    taps of parity p.
  """
  k, cout = weight.shape[0], weight.shape[-1]
  n_taps = [len(range(p, k, 2)) for p in range(2)]
  phases = []
  for p in range(2):
    row = []
    for q in range(2):
      if not n_taps[p] or not n_taps[q]:  # k = 1: odd phases receive no tap
        shape = (x.shape[0], x.shape[1] + n_taps[p] - 1, x.shape[2] + n_taps[q] - 1, cout)
        row.append(jnp.zeros(shape, x.dtype))
        continue
      # phase p reads x[m - j] with tap p + 2j: as a correlation, the taps in reverse order.
      sub = weight[p::2, q::2][::-1, ::-1]  # [n_p, n_q, I, O]
      pads = ((n_taps[p] - 1,) * 2, (n_taps[q] - 1,) * 2)
      row.append(conv2d(x, sub, 1, pads))
    phases.append(row)
  return phases


def upfirdn2d_up2(x: jax.Array, fir: jax.Array, pad: tuple[int, int]) -> jax.Array:
  """rosinality's ``upfirdn2d(x, fir, up=2, pad=pad)`` for a separable ``fir`` [f, f].

  x: [B, H, W, C] -> [B, 2H + pad0 + pad1 - f + 1, (same for W), C] (even sizes).
  """
  f = fir.shape[0]
  h, w = (2 * n + pad[0] + pad[1] - f + 1 for n in x.shape[1:3])
  return _fir2d_phases([[x, None], [None, None]], fir, pad[0], (h, w))


def modulated_conv2d(
    x: jax.Array,  # [B, H, W, I]
    weight: jax.Array,  # [k, k, I, O], equalised-lr scale already applied
    styles: jax.Array,  # [B, I]
    *,
    demodulate: bool = True,
    up_fir: jax.Array | None = None,  # [f, f] FIR filter (gain included) for 2x upsampling
    upconv: str = "separable",
    dtype=jnp.float32,
) -> jax.Array:
  """StyleGAN2 modulated convolution, as one ordinary convolution for the whole batch.

  Modulating the weight per sample (``W * s_i``) and demodulating the result per output channel
  is the same as scaling the *input* channels by the style, convolving with the shared weight
  and scaling the *output* channels by ``1/sqrt(sum_{i,k} (W s_i)^2 + 1e-8)``: no per-sample
  kernels, no grouped convolution.

  With ``up_fir`` the layer is rosinality's transposed k x k convolution (stride 2) followed by
  the FIR blur. Two exact forms (``upconv``):

  * ``"separable"`` (default): the transposed convolution in polyphase form
    (:func:`transposed_conv2x_phases`: k*k multiply-adds per input pixel, no zeros), then the
    FIR as two 1-D passes of shifted adds on those phases (:func:`fir_phases_1d`),
    interleaved once at the end.
  * ``"folded"``: FIR and kernel folded into one (k+f-1)^2 kernel evaluated as four
    stride-1 phase convolutions (:func:`_upconv_polyphase`): one convolution, but 4x the
    multiply-adds of the separable form for k = 3, f = 4.

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
    out = conv2d(x, weight.astype(dtype), 1, ((pad, pad), (pad, pad)))
  else:
    f = up_fir.shape[0]
    # rosinality's Blur after the transposed conv: p = f - 2 - (k - 1), pad ((p+1)//2 + 1, p//2 + 1)
    p = f - 2 - (k - 1)
    blur_pad = ((p + 1) // 2 + 1, p // 2 + 1)
    if upconv == "separable":
      phases = transposed_conv2x_phases(x, weight.astype(dtype))  # 4 x [B, ~H, ~W, O]
      out = _fir2d_phases(phases, up_fir, blur_pad[0], (2 * x.shape[1], 2 * x.shape[2]))
    elif upconv == "folded":
      # A transposed conv is a *true* convolution of the zero-dilated input; as XLA correlates,
      # the folded kernel is flipped spatially. On the dilated input (2H - 1 long) rosinality's
      # padding is k - 1 + blur_pad[0] in front, and whatever makes the output 2H long behind.
      folded = fold_fir_into_kernel(weight, up_fir.astype(weight.dtype))[::-1, ::-1]
      out = _upconv_polyphase(x, folded.astype(dtype), k - 1 + blur_pad[0])
    else:
      raise ValueError(f"unknown upconv {upconv!r}; expected one of {UPCONV_MODES}")
  if demodulate:
    out = out * dcoefs[:, None, None, :].astype(dtype)
  return out


def upsample2x_fir(x: jax.Array, fir: jax.Array) -> jax.Array:
  """Zero-insert 2x upsampling followed by the FIR ``fir`` (gain included), per channel.

  rosinality's ``upfirdn2d(x, fir, up=2, pad=(pad0, pad1))`` with p = f - 2,
  pad0 = (p + 1) // 2 + 1, pad1 = p // 2 (the ToRGB skip path), in polyphase form: each output
  parity is f/2 shifted multiply-adds of the input, per axis.

  Args:
    x: [B, H, W, C].
    fir: [f, f], separable.
  Returns:
    [B, 2H, 2W, C].
  """
  p = fir.shape[0] - 2
  return upfirdn2d_up2(x, fir, ((p + 1) // 2 + 1, p // 2))
