"""Full-reference pixel metrics on [0, 1] images: PSNR and SSIM (batched, jitted, pure).

* PSNR per image: ``10 log10(R^2 / MSE)`` over all pixels and channels (R = ``data_range``, 1
  for [0, 1] images); identical images give +inf.
* SSIM (Wang et al. 2004) per image: the standard Gaussian-window form — an 11x11 Gaussian
  window with σ = 1.5 (separable, normalised), constants ``C1 = (0.01 R)^2``, ``C2 = (0.03 R)^2``,
  local statistics without the N/(N-1) correction, evaluated only where the window fits inside
  the image ('valid', as the authors' reference code), the SSIM map averaged over positions and
  RGB channels. Identical images give 1.

Both take images [B, H, W, C] (or [H, W, C], giving a scalar) in float, computed in float32.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
_HI = jax.lax.Precision.HIGHEST


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
  """Normalised 1-D Gaussian taps [size] (float32), centred."""
  t = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
  g = np.exp(-0.5 * (t / sigma) ** 2)
  return (g / g.sum()).astype(np.float32)


def _batched(fn):
  """Lets ``fn`` (defined on [B, H, W, C]) also take a single image [H, W, C]."""
  @functools.wraps(fn)
  def wrapper(a, b, *args, **kwargs):
    if a.shape != b.shape:
      raise ValueError(f"{fn.__name__}: images differ in shape: {tuple(a.shape)} vs "
                       f"{tuple(b.shape)}")
    if a.ndim == 3:
      return fn(a[None], b[None], *args, **kwargs)[0]
    if a.ndim != 4:
      raise ValueError(f"{fn.__name__}: expected [B, H, W, C] or [H, W, C], got {tuple(a.shape)}")
    return fn(a, b, *args, **kwargs)
  return wrapper


@_batched
@functools.partial(jax.jit, static_argnames=("data_range",))
def psnr(a, b, data_range: float = 1.0):
  """PSNR in dB [B] between image batches [B, H, W, C] (+inf where identical)."""
  d = a.astype(jnp.float32) - b.astype(jnp.float32)
  mse = jnp.mean(d * d, axis=(1, 2, 3))  # [B]
  return 10.0 * jnp.log10(data_range ** 2 / mse)


def _filter_valid(x, taps):
  """Separable 'valid' filtering of every channel of x [B, H, W, K] with 1-D ``taps``."""
  k = taps.shape[0]
  c = x.shape[-1]
  dn = ("NHWC", "HWIO", "NHWC")
  kh = jnp.tile(taps.reshape(k, 1, 1, 1), (1, 1, 1, c))  # [k, 1, 1, C] depthwise
  kw = jnp.tile(taps.reshape(1, k, 1, 1), (1, 1, 1, c))  # [1, k, 1, C]
  x = jax.lax.conv_general_dilated(x, kh, (1, 1), "VALID", dimension_numbers=dn,
                                   feature_group_count=c, precision=_HI)  # [B, H-k+1, W, C]
  return jax.lax.conv_general_dilated(x, kw, (1, 1), "VALID", dimension_numbers=dn,
                                      feature_group_count=c, precision=_HI)  # [B, H', W', C]


@_batched
@functools.partial(jax.jit, static_argnames=("data_range", "return_map"))
def ssim(a, b, data_range: float = 1.0, return_map: bool = False):
  """Mean SSIM [B] between image batches [B, H, W, C] (H, W >= 11).

  With ``return_map=True`` returns the SSIM map [B, H - 10, W - 10, C] instead.
  """
  if min(a.shape[1:3]) < SSIM_WINDOW:
    raise ValueError(f"ssim: images must be at least {SSIM_WINDOW}x{SSIM_WINDOW}, got "
                     f"{tuple(a.shape[1:3])}")
  a = a.astype(jnp.float32)
  b = b.astype(jnp.float32)
  c = a.shape[-1]
  taps = jnp.asarray(gaussian_window())
  # (Co)variances are shift-invariant: take them of images centred on their global means, which
  # keeps E[x^2] - E[x]^2 from cancelling catastrophically in float32 on flat regions.
  ma = jnp.mean(a, axis=(1, 2), keepdims=True)  # [B, 1, 1, C]
  mb = jnp.mean(b, axis=(1, 2), keepdims=True)
  ac, bc = a - ma, b - mb
  stats = _filter_valid(jnp.concatenate([ac, bc, ac * ac, bc * bc, ac * bc], axis=-1), taps)
  mc_a, mc_b, e_aa, e_bb, e_ab = (stats[..., i * c:(i + 1) * c] for i in range(5))
  var_a = e_aa - mc_a * mc_a
  var_b = e_bb - mc_b * mc_b
  cov = e_ab - mc_a * mc_b
  mu_a, mu_b = mc_a + ma, mc_b + mb  # local means of the original images
  c1 = (SSIM_K1 * data_range) ** 2
  c2 = (SSIM_K2 * data_range) ** 2
  smap = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
      (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2))  # [B, H', W', C]
  return smap if return_map else jnp.mean(smap, axis=(1, 2, 3))
