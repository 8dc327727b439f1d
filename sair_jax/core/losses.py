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


def cosine_similarity(a: Array, b: Array) -> Array:
  """Cosine similarity along the last axis (broadcasting), with a tiny ε in the norms.

  The project's one cosine: the identity loss, the identity metric, the run's reports and the
  reference pool's ranking (``a[:, None]`` against ``b[None]`` for all pairs) use it.
  """
  a = jnp.asarray(a, jnp.float32)
  b = jnp.asarray(b, jnp.float32)
  num = jnp.sum(a * b, axis=-1)
  den = jnp.sqrt(jnp.sum(a * a, axis=-1) * jnp.sum(b * b, axis=-1) + _EPS**2)
  return num / den


# ----------------------------------------------------------------------------------------------
# Degradation fidelity (Eq. 3)
# ----------------------------------------------------------------------------------------------


FIDELITY_REDUCTIONS = ("mean", "sum")


@functools.partial(jax.jit, static_argnames=("reduction",))
def fidelity_loss(y: Array, degraded: Array, clamp_min: Optional[float] = None,
                  reduction: str = "mean") -> Array:
  """||Y − D(G(w))||² per image: [..., H, W, C] -> [...].

  ``reduction="mean"`` (default; the authors' script, which weighs it by 120): the mean squared
  error over the LQ's pixels and channels. ``reduction="sum"``: paper Eq. 3 as written, the
  squared Frobenius norm (the mean times H·W·C). ``clamp_min`` (the authors' script uses 1e-4
  with the mean) bounds each image's value from below; the gradient is zero for images
  already under the bound.
  """
  if reduction not in FIDELITY_REDUCTIONS:
    raise ValueError(f"unknown reduction {reduction!r}; expected one of {FIDELITY_REDUCTIONS}")
  reduce = jnp.mean if reduction == "mean" else jnp.sum
  err = reduce(jnp.square(degraded - y), axis=(-3, -2, -1))
  return err if clamp_min is None else jnp.maximum(err, clamp_min)


# ----------------------------------------------------------------------------------------------
# Identity (Eq. 5)
# ----------------------------------------------------------------------------------------------


@jax.jit
def identity_loss(emb_ref: Array, emb_gen: Array) -> Array:
  """1 − cos(T(Z), T(G(w))) from raw (un-normalised) embeddings: [..., E] -> [...]."""
  return 1.0 - cosine_similarity(emb_ref, emb_gen)


@jax.jit
def latent_prior_loss(w: Array, w_ref: Array) -> Array:
  """||w − w_z||² summed over the W+ code (multiply by λ): [..., L, D] -> [...]."""
  return jnp.sum(jnp.square(w - w_ref), axis=(-2, -1))


def temporal_loss(w: Array, w_neighbour: Array) -> Array:
  """||w_t − w_s||² summed over the W+ code, w_s a solved neighbouring frame's code (video):
  [..., L, D] -> [...]. Not in the paper (one image there); it is the prior term's squared
  distance, centred on the neighbour instead of the reference (sair_jax/pipeline/video.py)."""
  return latent_prior_loss(w, w_neighbour)


# ----------------------------------------------------------------------------------------------
# PULSE cross (geodesic) loss
# ----------------------------------------------------------------------------------------------


_PULSE_WIDTH = 512.0  # PULSE multiplies by its StyleGAN's W width, a constant


@jax.jit
def cross_loss(w: Array) -> Array:
  """PULSE's geodesic penalty between the rows of a W+ code: [..., L, D] -> [...].

  For rows a, b it takes 2·atan2(|a − b|, |a + b|) (the angle between them when |a| = |b|, as
  on PULSE's sphere); the value is the mean over all L×L row pairs of 512·angle², divided by
  8. The 512 is PULSE's constant, NOT the latent width D: on a narrower generator
  (D = 128, 256) the value stays what PULSE and the authors' script compute, so the
  ``official`` objective equals the script on any generator. Summed over a batch it equals
  PULSE's batch value.
  """
  a = w[..., None, :, :]  # [..., 1, L, D]
  b = w[..., :, None, :]  # [..., L, 1, D]
  diff = jnp.sqrt(jnp.sum(jnp.square(a - b), axis=-1) + 1e-9)  # [..., L, L]
  summ = jnp.sqrt(jnp.sum(jnp.square(a + b), axis=-1) + 1e-9)
  angle = 2.0 * jnp.arctan2(diff, summ)
  return jnp.mean(jnp.square(angle) * _PULSE_WIDTH, axis=(-2, -1)) / 8.0


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
  return 1.0 - cosine_similarity(flat(moved), flat(direction))


@jax.jit
def expression_loss_rows(w: Array, direction: Array, gamma: float = 0.0) -> Array:
  """The authors' variant: 1 − mean over rows of |cos(w_row + γΔw_row, Δw_row)|.

  [..., L, D] -> [...]; ``direction`` broadcasts as in :func:`expression_loss`. The script
  itself uses γ = 0 here (γ only moves its saved image).
  """
  direction = jnp.broadcast_to(direction, w.shape)
  return 1.0 - jnp.mean(jnp.abs(cosine_similarity(w + gamma * direction, direction)), axis=-1)


# ----------------------------------------------------------------------------------------------
# Skin colour (Eq. 7)
# ----------------------------------------------------------------------------------------------

# BT.601 analogue YUV. The paper variant offsets and scales U and V into [0, 1]; the official
# variant (the authors' script) maps every channel by (c + 1) / 2 instead.
_RGB_TO_YUV = np.array([[0.299, 0.587, 0.114],
                        [-0.14713, -0.28886, 0.436],
                        [0.615, -0.51499, -0.10001]], dtype=np.float32)
_YUV_SCALE = np.array([1.0, 0.5 / 0.436, 0.5 / 0.615], dtype=np.float32)
_YUV_OFFSET = np.array([0.0, 0.5, 0.5], dtype=np.float32)

COLOR_SPACES = ("yuv", "rgb")
HISTOGRAM_VARIANTS = ("paper", "official")

# The official variant's hard bins (arXiv 2012.06311, as the authors' script configures them).
_HARD_RANGE = (-0.05, 1.05)
_HARD_BASE = 1.01
_OFFICIAL_NORM = 256.0**2  # the script divides its EMD by 256², whatever the image size


def _yuv(x: Array) -> Array:
  """RGB [..., 3] -> BT.601 YUV [..., 3] (Y ∈ [0, 1], U ∈ ±0.436, V ∈ ±0.615)."""
  return jnp.einsum("...c,dc->...d", x, jnp.asarray(_RGB_TO_YUV),
                    precision=jax.lax.Precision.HIGHEST)


@functools.partial(jax.jit, static_argnames=("color_space",))
def to_histogram_space(x: Array, color_space: str = "yuv") -> Array:
  """RGB in [0, 1] -> the paper variant's channels, each with natural range [0, 1].

  'yuv': Y = BT.601 luma; U ∈ [−0.436, 0.436] and V ∈ [−0.615, 0.615] mapped linearly onto
  [0, 1]. 'rgb': unchanged.
  """
  if color_space == "rgb":
    return x
  if color_space != "yuv":
    raise ValueError(f"unknown colour space {color_space!r}; expected one of {COLOR_SPACES}")
  return _yuv(x) * jnp.asarray(_YUV_SCALE) + jnp.asarray(_YUV_OFFSET)


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


def hard_bin(values: Array, bins: int) -> tuple[Array, Array]:
  """The script's "differentiable histogram with hard binning" for one value per element.

  Bins are ``bins`` equal intervals of [−0.05, 1.05] with half-width h and centres c_k; value
  x adds t(1.01^(h − |x − c_k|)) to bin k, with t(v) = v if v > 1 else 0. Only the bin that
  contains x can pass the threshold, so instead of a [..., bins] array this returns that bin's
  index and weight (shapes of ``values``). Computed in float32 as the script is: a value
  within ≈6e-6 of an edge (its weight rounds to 1), exactly on one (the masked-out pixels,
  (0 + 1) / 2 = 0.5, are), or outside the range weighs 0. The weight's derivative is
  −ln(1.01)·weight·sign(x − c_k) inside the bin, 0 elsewhere.
  """
  edges = np.linspace(*_HARD_RANGE, bins + 1)  # float64, as numpy makes them for the script
  half = (edges[1] - edges[0]) / 2
  centres = jnp.asarray(edges[:-1] + half, jnp.float32)  # [bins]
  x = values.astype(jnp.float32)
  index = jnp.clip(jnp.floor((x - _HARD_RANGE[0]) / (2 * half)), 0, bins - 1).astype(jnp.int32)
  weight = jnp.power(jnp.float32(_HARD_BASE), jnp.float32(half) - jnp.abs(x - centres[index]))
  return index, jnp.where(weight > 1.0, weight, 0.0)


def _official_counts(img: Array, bins: int, color_space: str) -> Array:
  """Un-normalised hard-binned counts of every pixel of ONE image: [H, W, 3] -> [3, bins]."""
  vals = ((_yuv(img) if color_space == "yuv" else img) + 1.0) / 2.0  # [H, W, 3]
  index, weight = hard_bin(vals.reshape(-1, 3), bins)  # [N, 3] each
  index = index + bins * jnp.arange(3)  # channel c's bins are c·bins ... c·bins + bins − 1
  counts = jax.ops.segment_sum(weight.reshape(-1), index.reshape(-1), num_segments=3 * bins)
  return counts.reshape(3, bins)


def _official_emd(x: Array, y: Array, mask: Array, mask_y: Array, bins: int,
                  color_space: str) -> Array:
  """The script's EMD / 256² for ONE image pair: x, y [H, W, 3], masks [H, W] -> []."""
  cx = _official_counts(x * mask[..., None], bins, color_space)  # [3, bins]
  cy = _official_counts(y * mask_y[..., None], bins, color_space)
  gap = jnp.cumsum(cx, axis=-1) - jnp.cumsum(cy, axis=-1)
  return jnp.mean(jnp.sum(jnp.square(gap), axis=-1)) / _OFFICIAL_NORM


@functools.partial(jax.jit, static_argnames=("bins", "width", "color_space", "variant"))
def histogram_loss(x: Array, y: Array, mask: Array, mask_y: Optional[Array] = None, *,
                   bins: Optional[int] = None, width: float = 1.0, color_space: str = "yuv",
                   variant: str = "paper") -> Array:
  """Skin-colour loss between the face regions of x and y: [..., H, W, 3] -> [...].

  ``mask`` is [..., H, W] or [..., H, W, 1] with values in [0, 1]; ``mask_y`` is y's mask
  (default: the same mask, as both the paper and the script use the generated face's mask).

  * ``variant="paper"`` (default, 64 bins): paper Eq. 7. Only the pixels inside the mask
    count, each with its mask weight. Per channel (YUV with U, V rescaled onto [0, 1]), the
    L1 distance between the CDFs of the two normalised soft histograms (sigmoid kernels of
    ``width`` bin widths), Σ_k |CDF₁ − CDF₂| / bins (≈ the 1-D Wasserstein distance in channel
    units); summed over the 3 channels. Smooth: every pixel gets a useful gradient.
    Memory O(pixels × channels × bins) per image: resize large images first.
  * ``variant="official"`` (256 bins): exactly the authors' script, before its 0.05 weight:
    ``emd / 256²``. Both images are multiplied by their mask and EVERY pixel is binned
    (masked-out pixels are black). Channels: YUV of the [0, 1] image, each mapped by
    (c + 1) / 2; hard bins over [−0.05, 1.05] (:func:`hard_bin`); per channel
    Σ_k (cumsum_k(counts₁) − cumsum_k(counts₂))² of the un-normalised counts; ``emd`` is the
    mean of the three channels. Its gradient only nudges pixels inside their bin (a pixel never
    feels the bins next to it). Memory O(pixels × channels); ``width`` is unused.

  ``color_space="rgb"`` bins the RGB channels instead of YUV (same per-variant mapping).
  """
  if variant not in HISTOGRAM_VARIANTS:
    raise ValueError(f"unknown histogram variant {variant!r}; expected {HISTOGRAM_VARIANTS}")
  if color_space not in COLOR_SPACES:
    raise ValueError(f"unknown colour space {color_space!r}; expected one of {COLOR_SPACES}")
  if bins is None:
    bins = 64 if variant == "paper" else 256
  mask_y = mask if mask_y is None else mask_y
  as_weights = lambda m, img: jnp.broadcast_to(  # [..., H, W(, 1)] -> [..., H, W]
      m[..., 0] if m.ndim == img.ndim else m, img.shape[:-1]).astype(img.dtype)
  mask, mask_y = as_weights(mask, x), as_weights(mask_y, y)

  if variant == "official":
    lead = x.shape[:-3]
    flat = lambda t, rank: t.reshape((-1,) + t.shape[len(t.shape) - rank:])
    emd = jax.vmap(lambda *a: _official_emd(*a, bins, color_space))(
        flat(x, 3), flat(y, 3), flat(mask, 2), flat(mask_y, 2))  # [prod(lead)]
    return emd.reshape(lead)

  def cdf(img, m):
    vals = to_histogram_space(img, color_space)
    vals = vals.reshape(vals.shape[:-3] + (-1, vals.shape[-1]))  # [..., N, C]
    m = m.reshape(m.shape[:-2] + (-1,))  # [..., N]
    counts = soft_cdf(vals, m, bins, width)  # [..., C, bins]
    total = jnp.maximum(jnp.sum(m, axis=-1), 1e-6)[..., None, None]
    return counts / total

  gap = jnp.abs(cdf(x, mask) - cdf(y, mask_y))  # [..., C, bins]
  return jnp.sum(gap, axis=(-2, -1)) / bins
