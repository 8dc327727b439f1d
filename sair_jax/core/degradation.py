"""The degradation operator D of SAIR (paper Eq. 4): D(x) = JPEG_q((x * k)↓s + n_σ).

Every stage is a pure function on batched NHWC float images [B, H, W, C] in [0, 1] (vmap a
single-image call over a batch axis if needed); all of them are jit-, vmap- and grad-safe, and
randomness only enters through explicit PRNG keys.

* :func:`blur` — convolution with a Gaussian, anisotropic Gaussian or user kernel.
* :func:`downsample` — integer-factor downsampling; ``"bicubic"`` is the authors' anti-aliased
  separable bicubic (:func:`bicubic_downsample`), plus ``"area"`` and ``"bilinear"``.
* :func:`add_gaussian_noise` — additive zero-mean Gaussian noise, σ per image.
* :func:`jpeg` — JPEG compression round trip (YCbCr, 4:2:0, 8×8 DCT, quantisation) with a
  differentiable rounding.
* :func:`degrade` — the composition, configured by a :class:`DegradationParams`.
"""

from __future__ import annotations

import functools
import math
from typing import Optional, Union

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Scalar = Union[float, int, Array]

_HIGHEST = jax.lax.Precision.HIGHEST  # exact float32 on accelerators (no TF32 / bf16 passes)


# ----------------------------------------------------------------------------------------------
# Blur
# ----------------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("radius",))
def gaussian_kernel1d(sigma: Scalar, radius: int) -> Array:
  """Normalised 1-D Gaussian taps at offsets -radius..radius, shape [2·radius + 1].

  ``radius`` is static (it sets the shape); ``sigma`` may be traced.
  """
  t = jnp.arange(-radius, radius + 1, dtype=jnp.float32)  # [K]
  k = jnp.exp(-0.5 * (t / sigma) ** 2)
  return k / jnp.sum(k)


@functools.partial(jax.jit, static_argnames=("radius",))
def gaussian_kernel(sigma: Scalar, radius: int, sigma_y: Optional[Scalar] = None,
                    theta: Scalar = 0.0) -> Array:
  """Normalised 2-D Gaussian kernel, shape [2·radius + 1, 2·radius + 1].

  Isotropic with ``sigma`` alone; anisotropic with standard deviation ``sigma`` along the
  direction at angle ``theta`` (radians, counter-clockwise from the +x / column axis) and
  ``sigma_y`` across it.
  """
  sigma_y = sigma if sigma_y is None else sigma_y
  t = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
  yy, xx = jnp.meshgrid(-t, t, indexing="ij")  # row index grows downwards: y = -row offset
  c, s = jnp.cos(theta), jnp.sin(theta)
  u = c * xx + s * yy   # along the principal axis
  v = -s * xx + c * yy  # across it
  k = jnp.exp(-0.5 * ((u / sigma) ** 2 + (v / sigma_y) ** 2))  # [K, K]
  return k / jnp.sum(k)


PADDINGS = ("reflect", "edge", "zeros")


def _check_padding(mode: str) -> None:
  if mode not in PADDINGS:
    raise ValueError(f"unknown padding mode {mode!r}; expected one of {PADDINGS}")


def _pad_hw(x: Array, top: int, bottom: int, left: int, right: int, mode: str) -> Array:
  """Pads the H and W axes of an NHWC tensor; mode 'reflect' | 'edge' | 'zeros'."""
  _check_padding(mode)
  widths = ((0, 0), (top, bottom), (left, right), (0, 0))
  return jnp.pad(x, widths) if mode == "zeros" else jnp.pad(x, widths, mode=mode)


def _depthwise(x: Array, kernel: Array) -> Array:
  """Valid cross-correlation of every channel of x [B, H, W, C] with one [kh, kw] kernel."""
  c = x.shape[-1]
  w = jnp.broadcast_to(kernel.astype(x.dtype)[:, :, None, None], kernel.shape + (1, c))  # HWIO
  return jax.lax.conv_general_dilated(
      x, w, window_strides=(1, 1), padding="VALID",
      dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=c, precision=_HIGHEST)


def _pad_indices(n: int, before: int, after: int, mode: str) -> np.ndarray:
  """Source index of every position of a padded axis of length n (-1: a zero pad)."""
  _check_padding(mode)
  if mode == "zeros":
    return np.pad(np.arange(n), (before, after), constant_values=-1)
  return np.pad(np.arange(n), (before, after), mode=mode)


def _filter_matrix(taps: Array, n: int, before: int, after: int, padding: str,
                   stride: int = 1) -> Array:
  """Matrix A [n_out, n] of a 1-D filter along an axis of length n: out = A @ in.

  out[i] = Σ_t taps[t] · padded[i·stride + t] (cross-correlation), where ``padded`` is the axis
  padded by (before, after) with ``padding``. The padding is folded into the matrix, so one
  pass is a single matmul: exact, and much faster than a depthwise convolution for long
  filters (on CPUs, and on matrix units elsewhere).
  """
  size = taps.shape[0]
  src = _pad_indices(n, before, after, padding)  # [n + before + after]
  n_out = (n + before + after - size) // stride + 1
  rows = np.repeat(np.arange(n_out), size)
  cols = src[rows * stride + np.tile(np.arange(size), n_out)]
  keep = cols >= 0
  vals = jnp.tile(taps, n_out)[keep]
  return jnp.zeros((n_out, n), taps.dtype).at[rows[keep], cols[keep]].add(vals)


def _separable(x: Array, rows: Array, cols: Array) -> Array:
  """Applies filter matrices along H (rows [H', H]) and W (cols [W', W]) of x [B, H, W, C]."""
  x = jnp.einsum("ij,bjwc->biwc", rows.astype(x.dtype), x, precision=_HIGHEST)
  return jnp.einsum("ij,bhjc->bhic", cols.astype(x.dtype), x, precision=_HIGHEST)


@functools.partial(jax.jit, static_argnames=("padding",))
def blur(x: Array, kernel: Array, padding: str = "reflect") -> Array:
  """Convolves every channel of x [B, H, W, C] with ``kernel``; output has the input's size.

  ``kernel`` is either 2-D [kh, kw] (true convolution: the kernel is flipped, which matters
  only for asymmetric kernels) or 1-D [k], meaning the separable kernel k ⊗ k, applied as two
  1-D passes (use it for isotropic Gaussians; any length is cheap). Borders are padded with
  ``padding`` ('reflect' | 'edge' | 'zeros'); for even kernel sizes the extra pad goes at the
  bottom/right.
  """
  kernel = jnp.asarray(kernel, dtype=jnp.float32)
  if kernel.ndim == 1:
    taps, n = kernel[::-1], kernel.shape[0]  # convolution: flipped taps
    matrix = lambda length: _filter_matrix(taps, length, (n - 1) // 2, n // 2, padding)
    return _separable(x, matrix(x.shape[1]), matrix(x.shape[2]))  # [H, H], [W, W]
  if kernel.ndim != 2:
    raise ValueError(f"blur kernel must be 1-D or 2-D, got shape {kernel.shape}")
  kh, kw = kernel.shape
  x = _pad_hw(x, (kh - 1) // 2, kh // 2, (kw - 1) // 2, kw // 2, padding)
  return _depthwise(x, kernel[::-1, ::-1])


# ----------------------------------------------------------------------------------------------
# Downsampling
# ----------------------------------------------------------------------------------------------


def _cubic(t: np.ndarray, a: float = -0.5) -> np.ndarray:
  """Keys' cubic convolution kernel with parameter ``a``."""
  t = np.abs(t)
  near = (a + 2.0) * t**3 - (a + 3.0) * t**2 + 1.0
  far = a * t**3 - 5.0 * a * t**2 + 8.0 * a * t - 4.0 * a
  return np.where(t <= 1.0, near, np.where(t < 2.0, far, 0.0))


def bicubic_taps(factor: int) -> np.ndarray:
  """The authors' anti-aliased bicubic taps for ``factor``: length 4·factor, sum 1.

  Tap i sits at (i - floor(4·factor / 2) + 0.5) / factor in low-resolution pixel units, i.e. the
  bicubic kernel (a = -0.5) stretched by the factor and centred between the two middle taps.
  """
  size = 4 * factor
  k = _cubic((np.arange(size) - math.floor(size / 2) + 0.5) / factor)
  return (k / k.sum()).astype(np.float32)  # [4·factor]


@functools.partial(jax.jit, static_argnames=("factor",))
def bicubic_downsample(x: Array, factor: int) -> Array:
  """Anti-aliased separable bicubic downsampling of x [B, H, W, C] by an integer ``factor``.

  Matches the authors' (PULSE-style) operator: reflect padding of (3·factor)//2 before and
  3·factor - (3·factor)//2 after, then a strided 1-D pass along H followed by one along W
  (each pass one matmul with a [H/f, H] filter matrix).
  Output [B, H // factor, W // factor, C] when H, W are multiples of ``factor``.
  """
  factor = int(factor)
  if factor == 1:
    return x
  k = jnp.asarray(bicubic_taps(factor))
  pad = 3 * factor  # kernel length minus stride
  matrix = lambda n: _filter_matrix(k, n, pad // 2, pad - pad // 2, "reflect", stride=factor)
  return _separable(x, matrix(x.shape[1]), matrix(x.shape[2]))  # [H/f, H], [W/f, W]


@functools.partial(jax.jit, static_argnames=("factor",))
def area_downsample(x: Array, factor: int) -> Array:
  """Box-filter (mean over factor×factor cells) downsampling; H, W must be multiples."""
  b, h, w, c = x.shape
  if h % factor or w % factor:
    raise ValueError(f"area downsampling needs H, W divisible by {factor}, got {h}x{w}")
  return x.reshape(b, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


@functools.partial(jax.jit, static_argnames=("factor",))
def bilinear_downsample(x: Array, factor: int) -> Array:
  """Plain bilinear resampling at the output pixel centres (no anti-aliasing).

  Same sampling grid as ``torch.nn.functional.interpolate(mode='bilinear',
  align_corners=False)``.
  """
  b, h, w, c = x.shape
  shape = (b, h // factor, w // factor, c)
  return jax.image.resize(x, shape, method="linear", antialias=False, precision=_HIGHEST)


_DOWNSAMPLERS = {
    "bicubic": bicubic_downsample,
    "area": area_downsample,
    "bilinear": bilinear_downsample,
}


@functools.partial(jax.jit, static_argnames=("factor", "method"))
def downsample(x: Array, factor: int, method: str = "bicubic") -> Array:
  """Downsamples x [B, H, W, C] by an integer factor with 'bicubic' | 'area' | 'bilinear'."""
  if method not in _DOWNSAMPLERS:
    raise ValueError(f"unknown downsampling method {method!r}; expected one of "
                     f"{sorted(_DOWNSAMPLERS)}")
  if int(factor) == 1:
    return x
  return _DOWNSAMPLERS[method](x, int(factor))


# ----------------------------------------------------------------------------------------------
# Noise
# ----------------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("batch", "var_range"))
def sample_noise_sigma(rng: Array, batch: int, var_range: tuple[float, float]) -> Array:
  """σ per image with variance drawn uniformly from ``var_range``; shape [batch]."""
  lo, hi = var_range
  var = jax.random.uniform(rng, (batch,), minval=lo, maxval=hi)
  return jnp.sqrt(var)


@jax.jit
def add_gaussian_noise(x: Array, rng: Array, sigma: Scalar) -> Array:
  """x + σ·N(0, 1); ``sigma`` is a scalar or one value per image, shape [B]."""
  sigma = jnp.asarray(sigma, dtype=x.dtype)
  sigma = jnp.broadcast_to(sigma, x.shape[:1]).reshape(-1, 1, 1, 1)  # [B, 1, 1, 1]
  return x + sigma * jax.random.normal(rng, x.shape, dtype=x.dtype)


# ----------------------------------------------------------------------------------------------
# JPEG
# ----------------------------------------------------------------------------------------------

# ITU-T T.81 Annex K tables, natural (row = vertical frequency) order.
_LUMA_TABLE = np.array([
    [16, 11, 10, 16, 24, 40, 51, 61],
    [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77],
    [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101],
    [72, 92, 95, 98, 112, 100, 103, 99],
], dtype=np.float32)
_CHROMA_TABLE = np.full((8, 8), 99.0, dtype=np.float32)
_CHROMA_TABLE[:4, :4] = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]]

# JPEG (JFIF) full-range YCbCr on 0..255 values.
_RGB_TO_YCC = np.array([[0.299, 0.587, 0.114],
                        [-0.168736, -0.331264, 0.5],
                        [0.5, -0.418688, -0.081312]], dtype=np.float32)
_YCC_TO_RGB = np.array([[1.0, 0.0, 1.402],
                        [1.0, -0.344136, -0.714136],
                        [1.0, 1.772, 0.0]], dtype=np.float32)
_YCC_OFFSET = np.array([0.0, 128.0, 128.0], dtype=np.float32)

JPEG_TABLES = ("authors", "ijg")


def _dct_matrix() -> np.ndarray:
  """Orthonormal 8-point DCT-II matrix M[u, x]; a block's 2-D DCT is M · b · Mᵀ."""
  u = np.arange(8)[:, None]
  x = np.arange(8)[None, :]
  m = np.cos((2 * x + 1) * u * np.pi / 16) * np.sqrt(2.0 / 8.0)
  m[0] = np.sqrt(1.0 / 8.0)
  return m.astype(np.float32)


_DCT = _dct_matrix()


@functools.partial(jax.jit, static_argnames=("tables",))
def quantisation_tables(quality: Scalar, tables: str = "authors") -> tuple[Array, Array]:
  """Luminance and chrominance quantisation tables for ``quality`` (scalar or [B]).

  Returns two arrays of shape quality.shape + [8, 8]. Both conventions use IJG's quality
  curve (scale = 5000/q below 50, 200 - 2q above):

  * ``"authors"`` — the differentiable-JPEG convention of the authors' script (DiffJPEG): the
    Annex K tables *transposed*, scaled by scale/100 without rounding (differentiable in
    ``quality``); steps are floored at 1 (matters only above quality 95; DiffJPEG divides by
    zero at 100).
  * ``"ijg"`` — what libjpeg / Pillow write: floor((table·scale + 50) / 100) clamped to
    [1, 255] (baseline), in natural orientation.
  """
  if tables not in JPEG_TABLES:
    raise ValueError(f"unknown JPEG table convention {tables!r}; expected one of {JPEG_TABLES}")
  q = jnp.clip(jnp.asarray(quality, dtype=jnp.float32), 1.0, 100.0)
  scale = jnp.where(q < 50, 5000.0 / q, 200.0 - 2.0 * q)[..., None, None]  # [..., 1, 1]
  luma, chroma = jnp.asarray(_LUMA_TABLE), jnp.asarray(_CHROMA_TABLE)
  if tables == "authors":
    authors = lambda t: jnp.maximum(t.T * scale / 100.0, 1.0)
    return authors(luma), authors(chroma)
  ijg = lambda t: jnp.clip(jnp.floor((t * scale + 50.0) / 100.0), 1.0, 255.0)
  return ijg(luma), ijg(chroma)


def diff_round(x: Array) -> Array:
  """Differentiable rounding round(x) + (x - round(x))³ (value ≈ round(x), slope ≥ 0)."""
  r = jnp.round(x)
  return r + (x - r) ** 3


def _to_blocks(x: Array) -> Array:
  """[B, H, W] -> [B, H/8, W/8, 8, 8] (row, column inside the block)."""
  b, h, w = x.shape
  return x.reshape(b, h // 8, 8, w // 8, 8).transpose(0, 1, 3, 2, 4)


def _from_blocks(x: Array) -> Array:
  """[B, H/8, W/8, 8, 8] -> [B, H, W]."""
  b, nh, nw = x.shape[:3]
  return x.transpose(0, 1, 3, 2, 4).reshape(b, nh * 8, nw * 8)


def _code_plane(plane: Array, table: Array, rounding) -> Array:
  """DCT, quantise, dequantise, inverse DCT of a level-shifted plane [B, H, W] (H, W % 8 == 0).

  ``table`` is [8, 8] or [B, 8, 8].
  """
  m = jnp.asarray(_DCT)
  blocks = _to_blocks(plane - 128.0)  # [B, nh, nw, 8, 8]
  coef = jnp.einsum("ux,bhwxy,vy->bhwuv", m, blocks, m, precision=_HIGHEST)
  t = table.reshape((-1, 1, 1, 8, 8))  # [B or 1, 1, 1, 8, 8]
  coef = rounding(coef / t) * t
  blocks = jnp.einsum("ux,bhwuv,vy->bhwxy", m, coef, m, precision=_HIGHEST)
  return _from_blocks(blocks) + 128.0


def _upsample2_fancy(p: Array, axis: int) -> Array:
  """libjpeg's "fancy" (triangle) 2× upsampling along ``axis``: 3/4 nearer + 1/4 farther."""
  n = p.shape[axis]
  first = jax.lax.slice_in_dim(p, 0, 1, axis=axis)
  last = jax.lax.slice_in_dim(p, n - 1, n, axis=axis)
  prev = jnp.concatenate([first, jax.lax.slice_in_dim(p, 0, n - 1, axis=axis)], axis)
  nxt = jnp.concatenate([jax.lax.slice_in_dim(p, 1, n, axis=axis), last], axis)
  pair = jnp.stack([0.75 * p + 0.25 * prev, 0.75 * p + 0.25 * nxt], axis=axis + 1)
  shape = list(p.shape)
  shape[axis] *= 2
  return pair.reshape(shape)


def _upsample2(p: Array, method: str) -> Array:
  """2× upsampling of chroma planes [B, h, w] -> [B, 2h, 2w]."""
  if method == "nearest":
    return jnp.repeat(jnp.repeat(p, 2, axis=1), 2, axis=2)
  if method == "fancy":
    return _upsample2_fancy(_upsample2_fancy(p, 1), 2)
  raise ValueError(f"unknown chroma upsampling {method!r}; expected 'nearest' or 'fancy'")


@functools.partial(jax.jit, static_argnames=("differentiable", "tables", "upsampling"))
def jpeg(x: Array, quality: Scalar, differentiable: bool = True,
         tables: str = "authors", upsampling: str = "nearest") -> Array:
  """JPEG compression round trip of x [B, H, W, 3] in [0, 1]; returns [B, H, W, 3] in [0, 1].

  RGB -> full-range YCbCr (0..255), 4:2:0 chroma subsampling (2×2 mean), 8×8 DCT of every
  level-shifted plane, quantisation with the tables of :func:`quantisation_tables` at
  ``quality`` (scalar or one per image, [B]), then the inverse path with chroma upsampling
  (``"nearest"``, as the authors' DiffJPEG, or libjpeg's triangle ``"fancy"``) and clamping to
  [0, 1]. ``differentiable`` selects the cubic rounding :func:`diff_round` (gradient flows)
  instead of the hard ``round`` of a real encoder. Any size works: the image is edge-padded to
  a multiple of 16 and cropped back.

  Defaults reproduce the authors' differentiable JPEG; ``tables="ijg", upsampling="fancy",
  differentiable=False`` models libjpeg / Pillow.
  """
  b, h, w, c = x.shape
  if c != 3:
    raise ValueError(f"jpeg expects 3 channels (RGB), got {c}")
  luma_t, chroma_t = quantisation_tables(quality, tables)
  rounding = diff_round if differentiable else jnp.round
  ph, pw = (-h) % 16, (-w) % 16
  xp = _pad_hw(x, 0, ph, 0, pw, "edge") if (ph or pw) else x
  ycc = jnp.einsum("bhwc,dc->bhwd", xp * 255.0, jnp.asarray(_RGB_TO_YCC), precision=_HIGHEST)
  ycc = ycc + jnp.asarray(_YCC_OFFSET)  # [B, H', W', 3]
  hh, ww = ycc.shape[1:3]
  y = _code_plane(ycc[..., 0], luma_t, rounding)  # [B, H', W']
  # 4:2:0: mean over 2×2 cells -> [B, H'/2, W'/2, 2]
  chroma = ycc[..., 1:].reshape(b, hh // 2, 2, ww // 2, 2, 2).mean(axis=(2, 4))
  cb = _code_plane(chroma[..., 0], chroma_t, rounding)
  cr = _code_plane(chroma[..., 1], chroma_t, rounding)
  up = lambda p: _upsample2(p, upsampling)  # [B, H'/2, W'/2] -> [B, H', W']
  ycc = jnp.stack([y, up(cb), up(cr)], axis=-1) - jnp.asarray(_YCC_OFFSET)
  rgb = jnp.einsum("bhwd,cd->bhwc", ycc, jnp.asarray(_YCC_TO_RGB), precision=_HIGHEST)
  rgb = jnp.clip(rgb, 0.0, 255.0) / 255.0
  return rgb[:, :h, :w, :]


# ----------------------------------------------------------------------------------------------
# Composition (Eq. 4)
# ----------------------------------------------------------------------------------------------


@flax.struct.dataclass
class DegradationParams:
  """Configuration of :func:`degrade`; every stage is skipped when its field is unset.

  Array-valued fields (kernel, noise_sigma, jpeg_quality) are pytree leaves and may be traced;
  the others are static.

  Attributes:
    kernel: blur kernel, 2-D [kh, kw] or 1-D separable [k] (see :func:`blur`); None = no blur.
    factor: integer downsampling factor; 1 = no downsampling.
    downsample: 'bicubic' (authors' anti-aliased) | 'area' | 'bilinear'.
    noise_sigma: noise σ, scalar or [B]; None = use ``noise_var_range`` or no noise.
    noise_var_range: (lo, hi): σ² drawn per image uniformly from this range (paper: ×32 set
      uses (0.001, 0.003) on the [0, 1] scale of the images).
    jpeg_quality: scalar or [B]; None = no JPEG.
    jpeg_differentiable: cubic (True) or hard (False) rounding in :func:`jpeg`.
    jpeg_tables: 'authors' | 'ijg', see :func:`quantisation_tables`.
    jpeg_upsampling: chroma upsampling of the decoder, 'nearest' | 'fancy' (see :func:`jpeg`).
    blur_padding: border handling of the blur.
    clip: clip to [0, 1] after the noise stage (what saving an image would do).
  """
  kernel: Optional[Array] = None
  noise_sigma: Optional[Array] = None
  jpeg_quality: Optional[Array] = None
  factor: int = flax.struct.field(pytree_node=False, default=1)
  downsample: str = flax.struct.field(pytree_node=False, default="bicubic")
  noise_var_range: Optional[tuple] = flax.struct.field(pytree_node=False, default=None)
  jpeg_differentiable: bool = flax.struct.field(pytree_node=False, default=True)
  jpeg_tables: str = flax.struct.field(pytree_node=False, default="authors")
  jpeg_upsampling: str = flax.struct.field(pytree_node=False, default="nearest")
  blur_padding: str = flax.struct.field(pytree_node=False, default="reflect")
  clip: bool = flax.struct.field(pytree_node=False, default=True)

  @property
  def has_noise(self) -> bool:
    return self.noise_sigma is not None or self.noise_var_range is not None


@jax.jit
def degrade(x: Array, params: DegradationParams, rng: Optional[Array] = None) -> Array:
  """D(x) = JPEG_q((x ⊗ k)↓s + n_σ) for x [B, H, W, C] in [0, 1] (paper Eq. 4).

  ``rng`` is needed only when noise is configured. Returns [B, H/s, W/s, C].
  """
  if params.kernel is not None:
    x = blur(x, params.kernel, params.blur_padding)
  x = downsample(x, params.factor, params.downsample)
  if params.has_noise:
    if rng is None:
      raise ValueError("degrade: noise is configured but no PRNG key was given")
    sigma_rng, noise_rng = jax.random.split(rng)
    if params.noise_sigma is not None:
      sigma = params.noise_sigma
    else:
      sigma = sample_noise_sigma(sigma_rng, x.shape[0], params.noise_var_range)
    x = add_gaussian_noise(x, noise_rng, sigma)
    if params.clip:
      x = jnp.clip(x, 0.0, 1.0)
  if params.jpeg_quality is not None:
    x = jpeg(x, params.jpeg_quality, params.jpeg_differentiable, params.jpeg_tables,
             params.jpeg_upsampling)
  return x
