"""Face masks for the skin-colour histogram term (paper Eq. 7): landmark hull or FFHQ fallback.

The mask of a generated face is the filled convex hull of its 68 landmarks
(:mod:`sair_jax.face.landmarks`). When no face is found, or dlib is not installed, a fixed mask in
the canonical FFHQ face position is used instead: an ellipse centred at (0.5, 0.62) of the
image side with semi-axes 0.27 x 0.27 (between the eyes, at y ~ 0.47, and the mouth, at
y ~ 0.74, of an FFHQ-aligned face), which overlaps the landmark hulls of FFHQ-aligned faces
with an IoU of about 0.84. Masks are float32 in {0, 1}, at any resolution.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw

# (centre x, centre y, semi-axis x, semi-axis y) as fractions of the image side.
FFHQ_FACE_ELLIPSE = (0.5, 0.62, 0.27, 0.27)


def convex_hull(points: np.ndarray) -> np.ndarray:
  """Vertices [M, 2] of the convex hull of ``points`` [N, 2], counter-clockwise (for y up),
  by Andrew's monotone chain. Collinear points on the boundary are dropped."""
  pts = np.unique(np.asarray(points, np.float64), axis=0)  # sorted by x, then y
  if len(pts) < 3:
    return pts

  def turn(o, a, b):  # z of (a - o) x (b - o): > 0 for a left turn
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

  def half(seq):
    chain = []
    for p in seq:
      while len(chain) >= 2 and turn(chain[-2], chain[-1], p) <= 0:
        chain.pop()
      chain.append(p)
    return chain

  lower, upper = half(pts), half(pts[::-1])
  return np.asarray(lower[:-1] + upper[:-1])


def hull_mask(landmarks: np.ndarray, height: int, width: int) -> np.ndarray:
  """[H, W] float32 mask, 1 inside the convex hull of ``landmarks`` [N, 2] (x, y in pixels)."""
  hull = convex_hull(landmarks)
  img = Image.new("L", (width, height), 0)
  if len(hull) >= 3:
    ImageDraw.Draw(img).polygon([(float(x), float(y)) for x, y in hull], fill=1)
  return np.asarray(img, np.float32)


def ffhq_mask(height: int, width: int) -> np.ndarray:
  """[H, W] float32 fallback mask: the ``FFHQ_FACE_ELLIPSE`` of an FFHQ-aligned face."""
  cx, cy, rx, ry = FFHQ_FACE_ELLIPSE
  y = (np.arange(height, dtype=np.float64) + 0.5) / height  # pixel centres
  x = (np.arange(width, dtype=np.float64) + 0.5) / width
  inside = ((x[None, :] - cx) / rx) ** 2 + ((y[:, None] - cy) / ry) ** 2 <= 1.0
  return inside.astype(np.float32)


class FaceMasks(NamedTuple):
  masks: np.ndarray  # [B, H, W] float32 in {0, 1}
  found: np.ndarray  # [B] bool: True where landmarks were found (else the FFHQ fallback)


def face_masks(images, detector=None, *, value_range: tuple[float, float] = (-1.0, 1.0),
               detect_size: int | None = 256) -> FaceMasks:
  """Face masks of a batch of (generated) faces, on the host.

  Args:
    images: [B, H, W, 3] RGB with values in ``value_range`` — by default [-1, 1], the
      generator's output; pass ``(0, 1)`` for images in [0, 1].
    detector: a :class:`sair_jax.face.landmarks.LandmarkDetector`; None uses the shared default,
      or the fallback for every image when dlib is not installed.
    detect_size: landmarks are found on a copy resized to this side (faster; the SAIR
      authors' script computes its mask at 256 px), then scaled back; None: full resolution.
  Returns:
    :class:`FaceMasks` — masks at the images' resolution, and which images had a face.
  """
  from sair_jax.face import landmarks as lm

  images = np.asarray(images, np.float32)
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"expected images [B, H, W, 3], got {images.shape}")
  b, h, w, _ = images.shape
  lo, hi = value_range
  unit = np.clip((images - lo) / (hi - lo), 0.0, 1.0)  # [B, H, W, 3] in [0, 1]
  if detector is None:
    try:
      detector = lm.default_detector()
    except lm.LandmarksUnavailable:
      detector = None
  fallback = ffhq_mask(h, w)
  masks = np.empty((b, h, w), np.float32)
  found = np.zeros(b, bool)
  for i in range(b):
    points = None
    if detector is not None:
      if detect_size is None or max(h, w) <= detect_size:
        points, sx, sy = detector.detect(unit[i]), 1.0, 1.0
      else:
        dh, dw = max(1, round(h * detect_size / max(h, w))), max(1, round(w * detect_size / max(h, w)))
        small = Image.fromarray(np.round(unit[i] * 255).astype(np.uint8)).resize((dw, dh),
                                                                                  Image.BILINEAR)
        points, sx, sy = detector.detect(np.asarray(small)), w / dw, h / dh
      if points is not None:  # pixel centres: x_big + 0.5 = (x_small + 0.5) * scale
        points = (points + 0.5) * np.asarray([sx, sy], np.float32) - 0.5
    if points is None:
      masks[i] = fallback
    else:
      masks[i] = hull_mask(points, h, w)
      found[i] = True
  return FaceMasks(masks, found)
