"""Putting restored faces back into their photo: inverse warp and feathered blending.

A face restored from an FFHQ-aligned crop lives in aligned coordinates; its
:class:`sair_jax.face.align.AlignTransform` maps the aligned square (normalised ``(u, v)`` in
[0, 1]^2) onto the photo. :func:`paste_faces` goes the other way for every photo pixel near the
face: it finds the pixel's aligned position, samples the restored face there, and blends it
over the photo with a weight ``m``:

    out = photo * (1 - m) + face * m

Sampling filters as it interpolates: Keys' cubic kernel (a = -0.5), stretched by the stride
(face pixels per photo pixel) when the face is larger than its place in the photo, as Pillow
stretches it for a reducing resize; so a 1024 face pasted into a 60 px region does not alias,
and a face pasted at its own scale is interpolated as by a bicubic warp. A face more than twice
its place's size is first reduced by a power of two (Lanczos), which keeps the kernel at most
8 x 8 taps while leaving the frequencies the photo can show untouched.

The weight is a region of the aligned square, eroded and feathered: ``m`` is 0 on and outside
the region's boundary and rises smoothly (``3t^2 - 2t^3``) to 1 at a distance ``feather``
(a fraction of the aligned side) inside it. Regions (:data:`REGIONS`): ``square`` (the whole
aligned square, as GFPGAN and CodeFormer paste), ``head`` (the disc inscribed in it) and
``face`` (the FFHQ face ellipse of :data:`sair_jax.face.masks.FFHQ_FACE_ELLIPSE`). The weight is
evaluated analytically at each photo pixel's aligned position, so it is warped exactly. A custom
mask in aligned coordinates (e.g. a landmark hull from :func:`sair_jax.face.masks.hull_mask`) is
eroded and feathered the same way through a Euclidean distance transform (needs scipy), then
sampled bilinearly.

Where ``m`` is 0 the output pixel IS the photo's pixel (as float32 ``value / 255`` for a uint8
photo, so an 8-bit write gives back the same bytes): the blend is applied only where ``m > 0``.
The photo can first be upscaled by an integer factor (Pillow bicubic, per channel in float32);
the faces are then pasted at that resolution.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from sair_jax.face.masks import FFHQ_FACE_ELLIPSE

REGIONS = ("square", "head", "face")


def _smoothstep(t: np.ndarray) -> np.ndarray:
  t = np.clip(t, 0.0, 1.0)
  return t * t * (3.0 - 2.0 * t)


def _feathered(depth: np.ndarray, feather: float) -> np.ndarray:
  """Weights from the depth inside a region (<= 0 outside): 0 outside, 1 beyond ``feather``."""
  if feather <= 0:
    return (depth > 0).astype(np.float32)
  return np.where(depth > 0, _smoothstep(depth / feather), 0.0).astype(np.float32)


def region_weights(uv: np.ndarray, region: str = "square", feather: float = 0.1) -> np.ndarray:
  """Blend weights [...] float32 at normalised aligned positions ``uv`` [..., 2].

  The depth inside the region is in units of the aligned side: the distance to the nearest edge
  for ``square`` and ``head`` (exact), and ``(1 - r) * min(rx, ry)`` for the ``face`` ellipse
  (r its normalised radius; exact for FFHQ's circular one).
  """
  u, v = uv[..., 0], uv[..., 1]
  if region == "square":
    depth = np.minimum(np.minimum(u, 1.0 - u), np.minimum(v, 1.0 - v))
  elif region == "head":
    depth = 0.5 - np.hypot(u - 0.5, v - 0.5)
  elif region == "face":
    cx, cy, rx, ry = FFHQ_FACE_ELLIPSE
    depth = (1.0 - np.hypot((u - cx) / rx, (v - cy) / ry)) * min(rx, ry)
  else:
    raise ValueError(f"unknown paste region {region!r}; expected one of {', '.join(REGIONS)}")
  return _feathered(depth, feather)


def feather_mask(mask: np.ndarray, feather: float = 0.1) -> np.ndarray:
  """Erodes and feathers a mask [h, w] (inside where >= 0.5) in aligned coordinates.

  Returns [h, w] float32: 0 outside the mask and on its boundary pixels' outer half, rising
  smoothly to 1 at ``feather`` (a fraction of the longer side) inside.
  """
  from scipy import ndimage

  inside = np.asarray(mask, np.float32) >= 0.5
  if inside.ndim != 2:
    raise ValueError(f"expected a mask [h, w], got shape {inside.shape}")
  # distance (pixels) from each inside pixel's centre to the nearest outside pixel's centre;
  # the boundary lies half a pixel before that
  depth = (ndimage.distance_transform_edt(np.pad(inside, 1))[1:-1, 1:-1] - 0.5) / max(inside.shape)
  return _feathered(np.where(inside, depth, 0.0), feather)


def _bilinear(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """``img`` [h, w, C] at pixel positions ``x``, ``y`` [...] (edge values beyond) -> [..., C]."""
  h, w = img.shape[:2]
  x, y = np.clip(x, 0.0, w - 1.0), np.clip(y, 0.0, h - 1.0)
  x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
  x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
  fx, fy = (x - x0)[..., None], (y - y0)[..., None]
  top = img[y0, x0] * (1.0 - fx) + img[y0, x1] * fx
  bottom = img[y1, x0] * (1.0 - fx) + img[y1, x1] * fx
  return top * (1.0 - fy) + bottom * fy


def _keys(d: np.ndarray, a: float = -0.5) -> np.ndarray:
  """Keys' cubic convolution kernel at offsets ``d``."""
  d = np.abs(d)
  near = ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0
  far = ((a * d - 5.0 * a) * d + 8.0 * a) * d - 4.0 * a
  return np.where(d <= 1.0, near, np.where(d < 2.0, far, 0.0))


def _sample_cubic(img: np.ndarray, x: np.ndarray, y: np.ndarray, stride: float) -> np.ndarray:
  """``img`` [h, w, C] at pixel positions ``x``, ``y`` [N] -> [N, C].

  Keys' cubic kernel stretched by ``max(stride, 1)`` (the spacing of the positions in ``img``
  pixels), weights normalised, edge pixels repeated beyond the border.
  """
  h, w = img.shape[:2]
  s = max(float(stride), 1.0)
  r = int(math.ceil(2.0 * s))
  x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
  taps = range(1 - r, r + 1)
  wx = [_keys((x - (x0 + i)) / s) for i in taps]  # 2r arrays [N]
  wy = [_keys((y - (y0 + j)) / s) for j in taps]
  cols = [np.clip(x0 + i, 0, w - 1) for i in taps]
  out = np.zeros((x.shape[0], img.shape[-1]), np.float64)
  for j, wj in zip(taps, wy):
    rows = np.clip(y0 + j, 0, h - 1)
    line = sum(img[rows, c] * wi[:, None] for c, wi in zip(cols, wx))  # [N, C]
    out += line * wj[:, None]
  return out / (sum(wx) * sum(wy))[:, None]


def _resize_float(img: np.ndarray, width: int, height: int, resample) -> np.ndarray:
  """[h, w, C] float32 -> [height, width, C], per channel in Pillow's float mode (no 8-bit step)."""
  chans = [np.asarray(Image.fromarray(np.ascontiguousarray(img[..., c], np.float32))
                      .resize((width, height), resample)) for c in range(img.shape[-1])]
  return np.stack(chans, axis=-1)


def _as_float(image: np.ndarray, what: str) -> np.ndarray:
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"{what}: expected an RGB image [H, W, 3], got shape {image.shape}")
  if image.dtype == np.uint8:
    return image.astype(np.float32) / 255.0
  return image.astype(np.float32)


def upscale_photo(photo: np.ndarray, scale: int) -> np.ndarray:
  """[H, W, 3] (uint8 or float in [0, 1]) -> [H s, W s, 3] float32 in [0, 1], bicubic."""
  photo = _as_float(photo, "photo")
  if scale == 1:
    return photo
  h, w = photo.shape[:2]
  return np.clip(_resize_float(photo, w * scale, h * scale, Image.BICUBIC), 0.0, 1.0)


def _photo_grid(transform, height: int, width: int):
  """Pixel positions (x, y) [h, w] of the part of a [height, width] canvas the aligned square
  covers, and its (top, left) offset; None when it covers nothing."""
  quad = transform.quad
  lo = np.maximum(np.floor(quad.min(axis=0)).astype(int) - 1, 0)
  hi = np.minimum(np.ceil(quad.max(axis=0)).astype(int) + 2, [width, height])
  if np.any(hi <= lo):
    return None
  ys, xs = np.mgrid[lo[1]:hi[1], lo[0]:hi[0]].astype(np.float64)
  return xs, ys, int(lo[1]), int(lo[0])


def paste_weights(transform, height: int, width: int, *, region: str = "square",
                  feather: float = 0.1, mask: np.ndarray | None = None) -> np.ndarray:
  """The blend weights [height, width] float32 of one face on a canvas of that size.

  Args:
    transform: :class:`sair_jax.face.align.AlignTransform` into the canvas (``upscaled`` when the
      canvas is an upscaled photo).
    region, feather: the built-in region and its feather width (fraction of the aligned side).
    mask: instead of ``region``, a mask [h, w] in aligned coordinates (feathered here).
  """
  weights = np.zeros((height, width), np.float32)
  grid = _photo_grid(transform, height, width)
  if grid is None:
    return weights
  xs, ys, top, left = grid
  uv = transform.to_aligned(np.stack([xs, ys], axis=-1))  # [h, w, 2]
  if mask is None:
    m = region_weights(uv, region, feather)
  else:
    soft = feather_mask(mask, feather)
    mh, mw = soft.shape
    inside = (uv[..., 0] >= 0) & (uv[..., 0] <= 1) & (uv[..., 1] >= 0) & (uv[..., 1] <= 1)
    m = _bilinear(soft[..., None], uv[..., 0] * mw - 0.5, uv[..., 1] * mh - 0.5)[..., 0]
    m = np.where(inside, m, 0.0).astype(np.float32)
  weights[top:top + m.shape[0], left:left + m.shape[1]] = m
  return weights


def paste_faces(photo: np.ndarray, faces, transforms, *, region: str = "square",
                feather: float = 0.1, masks=None, scale: int = 1) -> np.ndarray:
  """Pastes restored faces back into their photo.

  Args:
    photo: [H, W, 3] RGB, uint8 or float in [0, 1] (the original photo).
    faces: restored faces, each [F, F, 3] (any side F, uint8 or float in [0, 1]), aligned as
      their transforms say.
    transforms: one :class:`sair_jax.face.align.AlignTransform` per face, into ``photo``.
    region, feather: where and how softly each face is blended (module docstring).
    masks: optional, one mask [h, w] in aligned coordinates (or None) per face, replacing
      ``region``.
    scale: integer factor the photo is upscaled by first.
  Returns:
    [H scale, W scale, 3] float32 in [0, 1]; pixels with zero weight are the (upscaled) photo's.
  """
  if int(scale) != scale or scale < 1:
    raise ValueError(f"scale must be a positive integer, got {scale}")
  faces, transforms = list(faces), list(transforms)
  if len(faces) != len(transforms):
    raise ValueError(f"{len(faces)} faces but {len(transforms)} transforms")
  masks = [None] * len(faces) if masks is None else list(masks)
  if len(masks) != len(faces):
    raise ValueError(f"{len(faces)} faces but {len(masks)} masks")
  canvas = upscale_photo(photo, int(scale))
  height, width = canvas.shape[:2]
  for face, transform, mask in zip(faces, transforms, masks):
    face = _as_float(face, "face")
    if face.shape[0] != face.shape[1]:
      raise ValueError(f"face: expected a square aligned face, got shape {face.shape}")
    t = transform.upscaled(int(scale)) if scale != 1 else transform
    weights = paste_weights(t, height, width, region=region, feather=feather, mask=mask)
    rows, cols = np.nonzero(weights)
    if rows.size == 0:
      continue
    halvings = int(math.floor(math.log2(face.shape[0] / t.side))) if face.shape[0] > t.side else 0
    if halvings > 0:  # cheaper taps: the stride is brought into [1, 2) by an exact-ratio reduce
      n = max(1, round(face.shape[0] / 2 ** halvings))
      face = _resize_float(face, n, n, Image.LANCZOS)
    n = face.shape[0]
    uv = t.to_aligned(np.stack([cols, rows], axis=-1).astype(np.float64))  # [N, 2]
    values = _sample_cubic(face, uv[:, 0] * n - 0.5, uv[:, 1] * n - 0.5, n / t.side)  # [N, 3]
    m = weights[rows, cols][:, None]
    canvas[rows, cols] = canvas[rows, cols] * (1.0 - m) + np.clip(values, 0.0, 1.0) * m
  return canvas


def paste_back(photo: np.ndarray, face: np.ndarray, transform, *, region: str = "square",
               feather: float = 0.1, mask: np.ndarray | None = None, scale: int = 1) -> np.ndarray:
  """:func:`paste_faces` for a single face."""
  return paste_faces(photo, [face], [transform], region=region, feather=feather,
                     masks=[mask], scale=scale)
