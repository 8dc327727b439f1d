"""The SAIR loss terms (paper Eq. 3, 5, 6, 7 and the authors' script), one value per image.

Every function treats its *trailing* axes as one image (or one latent / embedding) and all
leading axes as batch axes, returning one value per item: an image batch [B, H, W, C] gives
[B], a single image [H, W, C] gives a scalar. So the terms work batched as they are and under
``jax.vmap``; they are pure, jit-safe and differentiable in every floating input.

Conventions: images are NHWC in [0, 1]; W+ latents are [..., L, D] (L = 18 rows of D = 512 at
1024 px); embeddings are [..., E].
"""

from __future__ import annotations

import functools
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

_EPS = 1e-8


def _cosine(a: Array, b: Array) -> Array:
  """Cosine similarity along the last axis (broadcasting), with a tiny ε in the norms."""
  num = jnp.sum(a * b, axis=-1)
  den = jnp.sqrt(jnp.sum(a * a, axis=-1) * jnp.sum(b * b, axis=-1) + _EPS**2)
  return num / den


# ----------------------------------------------------------------------------------------------
# Degradation fidelity (Eq. 3)
# ----------------------------------------------------------------------------------------------


@jax.jit
def fidelity_loss(y: Array, degraded: Array, clamp_min: Optional[float] = None) -> Array:
  """||Y − D(G(w))||² as the mean squared error per image: [..., H, W, C] -> [...].

  ``clamp_min`` (the authors' script uses 1e-4) bounds each image's value from below; the
  gradient is zero for images already under the bound.
  """
  mse = jnp.mean(jnp.square(degraded - y), axis=(-3, -2, -1))
  return mse if clamp_min is None else jnp.maximum(mse, clamp_min)


# ----------------------------------------------------------------------------------------------
# Identity (Eq. 5)
# ----------------------------------------------------------------------------------------------


@jax.jit
def identity_loss(emb_ref: Array, emb_gen: Array) -> Array:
  """1 − cos(T(Z), T(G(w))) from raw (un-normalised) embeddings: [..., E] -> [...]."""
  return 1.0 - _cosine(emb_ref, emb_gen)


@jax.jit
def latent_prior_loss(w: Array, w_ref: Array) -> Array:
  """||w − w_z||² summed over the W+ code (multiply by λ): [..., L, D] -> [...]."""
  return jnp.sum(jnp.square(w - w_ref), axis=(-2, -1))


# ----------------------------------------------------------------------------------------------
# PULSE cross (geodesic) loss
# ----------------------------------------------------------------------------------------------


@jax.jit
def cross_loss(w: Array) -> Array:
  """PULSE's geodesic penalty between the rows of a W+ code: [..., L, D] -> [...].

  For rows a, b it takes 2·atan2(|a − b|, |a + b|) (the angle between them when |a| = |b|, as
  on PULSE's sphere); the value is the mean over all L×L row pairs of D·angle², divided by 8
  (PULSE hard-codes D = 512; here D is read from the latent). Summed over a batch it equals
  PULSE's batch value.
  """
  d = w.shape[-1]
  a = w[..., None, :, :]  # [..., 1, L, D]
  b = w[..., :, None, :]  # [..., L, 1, D]
  diff = jnp.sqrt(jnp.sum(jnp.square(a - b), axis=-1) + 1e-9)  # [..., L, L]
  summ = jnp.sqrt(jnp.sum(jnp.square(a + b), axis=-1) + 1e-9)
  angle = 2.0 * jnp.arctan2(diff, summ)
  return jnp.mean(jnp.square(angle) * d, axis=(-2, -1)) / 8.0


# ----------------------------------------------------------------------------------------------
# Expression (Eq. 6)
# ----------------------------------------------------------------------------------------------


@jax.jit
def expression_loss(w: Array, direction: Array, gamma: float = 0.0) -> Array:
  """Paper Eq. 6: 1 − cos(w + γΔw, Δw) over the whole W+ code: [..., L, D] -> [...].

  ``direction`` Δw broadcasts against ``w`` ([L, D], or [D] for one direction shared by all
  rows).
  """
  direction = jnp.broadcast_to(direction, w.shape)
  moved = w + gamma * direction
  flat = lambda t: t.reshape(t.shape[:-2] + (-1,))
  return 1.0 - _cosine(flat(moved), flat(direction))


@jax.jit
def expression_loss_rows(w: Array, direction: Array, gamma: float = 0.0) -> Array:
  """The authors' variant: 1 − mean over rows of |cos(w_row + γΔw_row, Δw_row)|.

  [..., L, D] -> [...]; ``direction`` broadcasts as in :func:`expression_loss`. The script
  itself uses γ = 0 here (γ only moves its saved image).
  """
  direction = jnp.broadcast_to(direction, w.shape)
  return 1.0 - jnp.mean(jnp.abs(_cosine(w + gamma * direction, direction)), axis=-1)


# ----------------------------------------------------------------------------------------------
# Skin colour (Eq. 7)
# ----------------------------------------------------------------------------------------------

# BT.601 analogue YUV; U and V are offset and scaled into [0, 1] for binning.
_RGB_TO_YUV = np.array([[0.299, 0.587, 0.114],
                        [-0.14713, -0.28886, 0.436],
                        [0.615, -0.51499, -0.10001]], dtype=np.float32)
_YUV_SCALE = np.array([1.0, 0.5 / 0.436, 0.5 / 0.615], dtype=np.float32)
_YUV_OFFSET = np.array([0.0, 0.5, 0.5], dtype=np.float32)

COLOR_SPACES = ("yuv", "rgb")
HISTOGRAM_VARIANTS = ("paper", "official")


@functools.partial(jax.jit, static_argnames=("color_space",))
def to_histogram_space(x: Array, color_space: str = "yuv") -> Array:
  """RGB in [0, 1] -> the histogram's channels, each with natural range [0, 1].

  'yuv': Y = BT.601 luma; U ∈ [−0.436, 0.436] and V ∈ [−0.615, 0.615] mapped linearly onto
  [0, 1]. 'rgb': unchanged.
  """
  if color_space == "rgb":
    return x
  if color_space != "yuv":
    raise ValueError(f"unknown colour space {color_space!r}; expected one of {COLOR_SPACES}")
  yuv = jnp.einsum("...c,dc->...d", x, jnp.asarray(_RGB_TO_YUV),
                   precision=jax.lax.Precision.HIGHEST)
  return yuv * jnp.asarray(_YUV_SCALE) + jnp.asarray(_YUV_OFFSET)


@functools.partial(jax.jit, static_argnames=("bins", "width"))
def soft_cdf(values: Array, weights: Array, bins: int, width: float = 1.0) -> Array:
  """Weighted soft-binned cumulative histogram (un-normalised) at every bin's upper edge.

  values: [..., N, C] in [0, 1]; weights: [..., N] (mask weights ≥ 0). Bins are equal
  intervals of [0, 1]; the outermost two are open towards ±∞ so every pixel's memberships sum
  to exactly its weight. Bin k's soft membership is σ((x − lo_k)/τ) − σ((x − hi_k)/τ) with
  τ = ``width`` bin widths, so the cumulative count up to edge e_k = (k + 1)/bins is
  Σ_n w_n · σ((e_k − x_n)/τ), and the last one (k = bins − 1) is the total weight Σ_n w_n.
  Returns [..., C, bins].
  """
  tau = width / bins
  edges = jnp.arange(1, bins, dtype=values.dtype) / bins  # [bins - 1]
  member = jax.nn.sigmoid((edges - values[..., None]) / tau)  # [..., N, C, bins - 1]
  inner = jnp.einsum("...n,...nck->...ck", weights, member, precision=jax.lax.Precision.HIGHEST)
  total = jnp.broadcast_to(jnp.sum(weights, axis=-1)[..., None, None], inner.shape[:-1] + (1,))
  return jnp.concatenate([inner, total], axis=-1)  # [..., C, bins]


@functools.partial(jax.jit, static_argnames=("bins", "width", "color_space", "variant"))
def histogram_loss(x: Array, y: Array, mask: Array, mask_y: Optional[Array] = None, *,
                   bins: Optional[int] = None, width: float = 1.0, color_space: str = "yuv",
                   variant: str = "paper") -> Array:
  """Skin-colour loss (Eq. 7) between the masked pixels of x and y: [..., H, W, 3] -> [...].

  Only pixels inside the mask count, each with its mask weight (mask [..., H, W] or
  [..., H, W, 1], values in [0, 1]); ``mask_y`` is y's mask (default: the same mask, as the
  paper uses the generated face's mask for both).

  * ``variant="paper"`` (default, 64 bins): per channel, the L1 distance between the CDFs of the
    two normalised soft histograms, Σ_k |CDF₁ − CDF₂| / bins (≈ the 1-D Wasserstein
    distance in channel units); summed over the 3 channels.
  * ``variant="official"`` (256 bins): the authors' script — cumulative sums of *un-normalised*
    (mask-weighted) bin counts, Σ_k |cumsum₁ − cumsum₂| / 256², summed over the channels.

  ``width`` is the sigmoid kernel's scale in bin widths (smaller: closer to hard binning).
  Memory is O(pixels × channels × bins) per image (≈200 MB at 256×256 with 256 bins, as the
  authors' script uses): resize large images first.
  """
  if variant not in HISTOGRAM_VARIANTS:
    raise ValueError(f"unknown histogram variant {variant!r}; expected {HISTOGRAM_VARIANTS}")
  if bins is None:
    bins = 64 if variant == "paper" else 256
  mask_y = mask if mask_y is None else mask_y

  def cdf(img, m):
    if m.ndim == img.ndim:  # [..., H, W, 1]
      m = m[..., 0]
    vals = to_histogram_space(img, color_space)
    vals = vals.reshape(vals.shape[:-3] + (-1, vals.shape[-1]))  # [..., N, C]
    m = jnp.broadcast_to(m, img.shape[:-1]).astype(vals.dtype)
    m = m.reshape(m.shape[:-2] + (-1,))  # [..., N]
    counts = soft_cdf(vals, m, bins, width)  # [..., C, bins]
    if variant == "official":
      return counts
    total = jnp.maximum(jnp.sum(m, axis=-1), 1e-6)[..., None, None]
    return counts / total

  gap = jnp.abs(cdf(x, mask) - cdf(y, mask_y))  # [..., C, bins]
  norm = bins if variant == "paper" else 256.0**2
  return jnp.sum(gap, axis=(-2, -1)) / norm
