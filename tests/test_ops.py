"""The fast StyleGAN2 ops against direct, per-sample numpy transcriptions of rosinality's code."""

import numpy as np
import pytest

from sair_jax.nets import ops
from sair_jax.nets.stylegan2 import make_fir


def _conv2d_nchw(x, w, pad):
  """Plain cross-correlation. x [C, H, W], w [O, C, k, k] -> [O, H', W']."""
  x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
  k = w.shape[-1]
  h, wd = x.shape[1] - k + 1, x.shape[2] - k + 1
  out = np.zeros((w.shape[0], h, wd))
  for a in range(k):
    for b in range(k):
      out += np.einsum("oc,chw->ohw", w[:, :, a, b], x[:, a:a + h, b:b + wd])
  return out


def _conv_transpose2x(x, w):
  """torch conv_transpose2d(stride=2, padding=0). x [C, H, W], w [C, O, k, k] -> [O, 2H+k-2, ...]."""
  c, h, wd = x.shape
  k = w.shape[-1]
  out = np.zeros((w.shape[1], 2 * h + k - 2, 2 * wd + k - 2))
  for i in range(h):
    for j in range(wd):
      out[:, 2 * i:2 * i + k, 2 * j:2 * j + k] += np.einsum("c,cokl->okl", x[:, i, j], w)
  return out


def _upfirdn(x, fir, up, pad0, pad1):
  """rosinality upfirdn2d (native): zero-insert, pad, true convolution. x [C, H, W]."""
  c, h, w = x.shape
  u = np.zeros((c, h * up, w * up))
  u[:, ::up, ::up] = x
  u = np.pad(u, ((0, 0), (pad0, pad1), (pad0, pad1)))
  flipped = fir[::-1, ::-1]
  return np.stack([_conv2d_nchw(u[i:i + 1], flipped[None, None], 0)[0] for i in range(c)])


def _reference_modconv(x, weight, style, demodulate, up, fir):
  """Per-sample weights, as rosinality's ModulatedConv2d. x [B, C, H, W], weight [O, C, k, k]."""
  outs = []
  k = weight.shape[-1]
  for b in range(x.shape[0]):
    wb = weight * style[b][None, :, None, None]
    if demodulate:
      wb = wb / np.sqrt((wb**2).sum(axis=(1, 2, 3), keepdims=True) + 1e-8)
    if up:
      y = _conv_transpose2x(x[b], wb.transpose(1, 0, 2, 3))
      p = (fir.shape[0] - 2) - (k - 1)
      y = _upfirdn(y, fir, 1, (p + 1) // 2 + 1, p // 2 + 1)
    else:
      y = _conv2d_nchw(x[b], wb, k // 2)
    outs.append(y)
  return np.stack(outs)


def _random_separable_fir(rng, taps=4, gain=4.0):
  """An asymmetric separable filter: catches a flipped or transposed FIR, which [1,3,3,1] hides."""
  a, b = rng.uniform(0.2, 1.0, taps), rng.uniform(0.2, 1.0, taps)
  k = np.outer(a, b)
  return k / k.sum() * gain


@pytest.mark.parametrize("upconv", ops.UPCONV_MODES)
@pytest.mark.parametrize("k,up,demodulate,cin,cout,side,fir_kind", [
    (3, False, True, 4, 5, 6, "stylegan"),
    (3, True, True, 3, 4, 5, "stylegan"),
    (1, False, False, 6, 3, 4, "stylegan"),
    (3, True, False, 2, 2, 4, "stylegan"),
    (3, True, True, 3, 2, 6, "asymmetric"),
    (3, True, True, 2, 3, 1, "asymmetric"),
])
def test_modulated_conv_matches_per_sample_reference(k, up, demodulate, cin, cout, side,
                                                     fir_kind, upconv):
  rng = np.random.default_rng(k * 10 + up + side)
  x = rng.normal(size=(2, cin, side, side))
  weight = rng.normal(size=(cout, cin, k, k))
  style = rng.normal(size=(2, cin)) + 1.0
  fir = (np.asarray(make_fir([1, 3, 3, 1], gain=4.0), np.float64) if fir_kind == "stylegan"
         else _random_separable_fir(rng))
  want = _reference_modconv(x, weight, style, demodulate, up, fir)
  got = ops.modulated_conv2d(
      x.transpose(0, 2, 3, 1).astype(np.float32), weight.transpose(2, 3, 1, 0).astype(np.float32),
      style.astype(np.float32), demodulate=demodulate, up_fir=fir if up else None,
      upconv=upconv)
  got = np.asarray(got).transpose(0, 3, 1, 2)
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("side,fir_kind", [(1, "stylegan"), (4, "stylegan"), (7, "stylegan"),
                                           (5, "asymmetric")])
def test_upsample_matches_upfirdn(side, fir_kind):
  rng = np.random.default_rng(side)
  x = rng.normal(size=(2, 3, side, side))
  fir = (np.asarray(make_fir([1, 3, 3, 1], gain=4.0), np.float64) if fir_kind == "stylegan"
         else _random_separable_fir(rng))
  want = np.stack([_upfirdn(xb, fir, 2, 2, 1) for xb in x])
  got = np.asarray(ops.upsample2x_fir(x.transpose(0, 2, 3, 1).astype(np.float32), fir))
  np.testing.assert_allclose(got.transpose(0, 3, 1, 2), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("taps,pad", [(4, (2, 1)), (4, (1, 2)), (4, (3, 0)), (6, (3, 2)),
                                      (2, (1, 0))])
def test_upfirdn2d_up2_any_filter_and_padding(taps, pad):
  rng = np.random.default_rng(taps + 10 * pad[0])
  x = rng.normal(size=(2, 3, 5, 4))
  fir = _random_separable_fir(rng, taps)
  want = np.stack([_upfirdn(xb, fir, 2, *pad) for xb in x])
  got = np.asarray(ops.upfirdn2d_up2(x.transpose(0, 2, 3, 1).astype(np.float32), fir, pad))
  np.testing.assert_allclose(got.transpose(0, 3, 1, 2), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_transposed_conv_phases_match_conv_transpose(k):
  rng = np.random.default_rng(k)
  x = rng.normal(size=(3, 5, 4))  # [C, H, W]
  w = rng.normal(size=(3, 2, k, k))  # [C, O, k, k] torch conv_transpose2d layout
  want = _conv_transpose2x(x, w)  # [O, 2H + k - 2, 2W + k - 2]
  phases = ops.transposed_conv2x_phases(x.transpose(1, 2, 0)[None].astype(np.float32),
                                        w.transpose(2, 3, 0, 1).astype(np.float32))
  for p in range(2):
    for q in range(2):
      np.testing.assert_allclose(np.asarray(phases[p][q])[0].transpose(2, 0, 1),
                                 want[:, p::2, q::2], rtol=1e-5, atol=1e-5)



@pytest.mark.parametrize("size,lo", [(6, 3), (4, 2), (5, 2), (6, 2), (3, 1)])
def test_polyphase_upconv_equals_dilated_conv(size, lo):
  from jax import lax
  rng = np.random.default_rng(size * 7 + lo)
  x = rng.normal(size=(2, 5, 4, 3)).astype(np.float32)
  kernel = rng.normal(size=(size, size, 3, 2)).astype(np.float32)
  got = ops._upconv_polyphase(x, kernel, lo)
  hi = size - lo
  want = lax.conv_general_dilated(x, kernel, (1, 1), ((lo, hi), (lo, hi)), lhs_dilation=(2, 2),
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)
