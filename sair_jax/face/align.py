"""FFHQ-style face alignment of ordinary photos, so that they can serve as SAIR references.

The command over it is ``python -m sair_jax.align --src photos/ --dst aligned/ [--size 1024]``
(:mod:`sair_jax.align`).

The procedure is the one used to build FFHQ from in-the-wild photos (its
``recreate_aligned_images`` step), driven by 68 dlib landmarks (:mod:`sair_jax.face.landmarks`):

1. An oriented square ("quad") is placed from the eyes and the mouth: its x axis is the
   eye-to-eye vector combined with the eye-to-mouth vector turned by 90 degrees, its half-side
   ``max(2 |eye-to-eye|, 1.8 |eye-to-mouth|)``, its centre 0.1 of the way from the eyes'
   midpoint to the mouth's.
2. Shrink: a photo much larger than needed is first downscaled by an integer factor.
3. Crop to the quad plus a border of 0.1 of its side.
4. Pad, where the quad leaves the photo, by reflection (at least 0.3 of the side), blurring
   and fading the padded area towards the photo's median colour.
5. Transform the quad to a square at 4x the output size (bilinear), then downsample to the
   output size (Lanczos).

Steps 2-5 map the aligned square onto the quad by an affine map (the FFHQ quad is a square, so
Pillow's bilinear QUAD warp is affine on it); :class:`AlignTransform` records that map in the
original photo's pixels, so that a restored face can be put back (:mod:`sair_jax.face.paste`).

Every file problem is one line; a photo without a detectable face is reported and skipped.
"""

from __future__ import annotations

import dataclasses
import os
import sys

import numpy as np
from PIL import Image

from sair_jax.io import images, listing


def _turn(v: np.ndarray) -> np.ndarray:
  """``v`` turned by +90 degrees in image coordinates (x right, y down): (x, y) -> (-y, x)."""
  return np.asarray([-v[1], v[0]], np.float64)


def ffhq_quad(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
  """The FFHQ crop square of a face.

  Args:
    landmarks: [68, 2] (x, y) dlib landmarks.
  Returns:
    ``(quad, qsize)``: quad [4, 2] corners (top-left, bottom-left, bottom-right, top-right of
    the aligned face) in image pixels, and its side length.
  """
  lm = np.asarray(landmarks, np.float64)
  if lm.shape != (68, 2):
    raise ValueError(f"expected 68 landmarks [68, 2], got {lm.shape}")
  eye_left, eye_right = lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)
  eye_mid, eye_vec = 0.5 * (eye_left + eye_right), eye_right - eye_left
  mouth_mid = 0.5 * (lm[48] + lm[54])  # outer mouth corners
  eye_to_mouth = mouth_mid - eye_mid
  x = eye_vec - _turn(eye_to_mouth)  # both terms point along the face's horizontal axis
  x *= max(2.0 * np.hypot(*eye_vec), 1.8 * np.hypot(*eye_to_mouth)) / np.hypot(*x)
  y = _turn(x)  # the face's downward axis, same length
  c = eye_mid + 0.1 * eye_to_mouth
  quad = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])  # [4, 2]
  return quad, float(2.0 * np.hypot(*x))


# Corners of the aligned square in normalised coordinates (u, v), in ffhq_quad's order.
_UNIT_CORNERS = np.asarray([[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]])


@dataclasses.dataclass(frozen=True, eq=False)
class AlignTransform:
  """Where an aligned face lies in its photo: an affine map from the aligned square to the photo.

  Aligned positions are normalised, ``(u, v)`` in [0, 1]^2 spanning the aligned square's outer
  edges (u to the right, v down), so one transform serves an aligned image of any side S: the
  centre of its pixel (x, y) is at ``u = (x + 0.5) / S``, ``v = (y + 0.5) / S``. Photo positions
  are pixel-index coordinates of the original photo (pixel centres at integers, as dlib's
  landmarks): ``photo (x, y) = matrix @ (u, v, 1)``.

  What it describes exactly: Pillow's QUAD warp samples output pixel (x, y) of the
  ``transform_size`` square at ``nw + (ne - nw) u + (sw - nw) v + (se - sw - ne + nw) u v`` (pixel
  index coordinates, after its half-pixel offsets cancel against the ``quad + 0.5`` passed in);
  the FFHQ quad is a square, so the last term is zero and the map is affine. The Lanczos resize to
  ``size`` keeps pixel centres at the same ``(u, v)``. Cropping and padding only translate the
  quad and cancel out. The shrink step resizes the photo to ``rint(W / shrink)`` x
  ``rint(H / shrink)`` while the quad is divided by ``shrink``; the map back through that resize
  (``x = (x_shrunk + 0.5) W / w' - 0.5``) is included, so the transform stays exact there too.
  """
  matrix: np.ndarray  # [2, 3] float64: photo (x, y) = matrix @ (u, v, 1)
  photo_size: tuple[int, int]  # (height, width) of the photo the matrix points into

  def to_photo(self, uv: np.ndarray) -> np.ndarray:
    """Normalised aligned positions [..., 2] (u, v) -> photo pixel positions [..., 2] (x, y)."""
    uv = np.asarray(uv, np.float64)
    return uv @ self.matrix[:, :2].T + self.matrix[:, 2]

  def to_aligned(self, xy: np.ndarray) -> np.ndarray:
    """Photo pixel positions [..., 2] (x, y) -> normalised aligned positions [..., 2] (u, v)."""
    xy = np.asarray(xy, np.float64)
    return (xy - self.matrix[:, 2]) @ np.linalg.inv(self.matrix[:, :2]).T

  def pixels_to_photo(self, points: np.ndarray, size: int) -> np.ndarray:
    """Pixel positions [..., 2] (x, y) in an aligned image of side ``size`` -> photo pixels."""
    return self.to_photo((np.asarray(points, np.float64) + 0.5) / size)

  def photo_to_pixels(self, xy: np.ndarray, size: int) -> np.ndarray:
    """Photo pixel positions [..., 2] -> pixel positions in an aligned image of side ``size``."""
    return self.to_aligned(xy) * size - 0.5

  @property
  def quad(self) -> np.ndarray:
    """[4, 2] the aligned square's outer corners in the photo (``ffhq_quad``'s order)."""
    return self.to_photo(_UNIT_CORNERS)

  @property
  def side(self) -> float:
    """Length in photo pixels of the aligned square's top edge."""
    return float(np.hypot(*self.matrix[:, 0]))

  def upscaled(self, factor: int) -> "AlignTransform":
    """The same map into the photo resized by ``factor`` (pixel centres: x' + 0.5 = (x + 0.5) f)."""
    m = self.matrix * factor
    m[:, 2] += 0.5 * factor - 0.5
    m.setflags(write=False)
    h, w = self.photo_size
    return AlignTransform(m, (h * factor, w * factor))


def _shrink(qsize: float, size: int) -> int:
  """FFHQ's integer pre-shrink of the photo (applied when above 1)."""
  return int(np.floor(qsize / size * 0.5))


def _shrunk_size(width: int, height: int, shrink: int) -> tuple[int, int]:
  """(width, height) of the photo after the pre-shrink."""
  return int(np.rint(width / shrink)), int(np.rint(height / shrink))


def align_transform(landmarks: np.ndarray, photo_size: tuple[int, int],
                    size: int = 1024) -> AlignTransform:
  """The :class:`AlignTransform` of ``align_face(image, landmarks, size)`` for a photo of
  ``photo_size`` (height, width), without warping anything."""
  quad, qsize = ffhq_quad(landmarks)
  h, w = int(photo_size[0]), int(photo_size[1])
  shrink = _shrink(qsize, size)
  scale, offset = np.ones(2), np.zeros(2)
  if shrink > 1:  # quad / shrink in the shrunk photo, then back through Pillow's resize
    sw, sh = _shrunk_size(w, h, shrink)
    scale = np.asarray([w / sw, h / sh]) / shrink
    offset = 0.5 * np.asarray([w / sw, h / sh]) - 0.5
  tl, bl, tr = quad[0], quad[1], quad[3]
  matrix = np.stack([(tr - tl) * scale, (bl - tl) * scale, tl * scale + offset], axis=1)  # [2, 3]
  matrix.setflags(write=False)
  return AlignTransform(matrix, (h, w))


def _pad_reflect_blend(img: np.ndarray, pad: tuple[int, int, int, int], qsize: float) -> np.ndarray:
  """Reflect-pads ``img`` [H, W, 3] float32 by ``pad`` (left, top, right, bottom) and fades the
  padding: blurred (sigma 0.02 qsize) near the photo, towards the median colour further out."""
  from scipy.ndimage import gaussian_filter

  left, top, right, bottom = pad
  img = np.pad(img, ((top, bottom), (left, right), (0, 0)), mode="reflect")
  h, w, _ = img.shape
  yy = np.arange(h, dtype=np.float32)[:, None, None]
  xx = np.arange(w, dtype=np.float32)[None, :, None]
  # 0 inside the photo, rising to 1 at the outer edge of the padding (per axis, max of both).
  fade = np.maximum(1.0 - np.minimum(xx / left, (w - 1 - xx) / right),
                    1.0 - np.minimum(yy / top, (h - 1 - yy) / bottom))  # [H, W, 1]
  sigma = qsize * 0.02
  blurred = gaussian_filter(img, [sigma, sigma, 0])
  img = img + (blurred - img) * np.clip(fade * 3.0 + 1.0, 0.0, 1.0)
  img = img + (np.median(img, axis=(0, 1)) - img) * np.clip(fade, 0.0, 1.0)
  return img


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = 1024,
               transform_size: int | None = None, pad: bool = True) -> np.ndarray:
  """FFHQ-aligns the face with ``landmarks`` in ``image``.

  Args:
    image: [H, W, 3] RGB, uint8 or float in [0, 1].
    landmarks: [68, 2] (x, y) in ``image`` pixels.
    size: output side.
    transform_size: side of the intermediate quad warp (default ``4 * size``, as FFHQ's 4096
      for 1024).
    pad: reflect-pad where the quad leaves the photo (else the outside is black).
  Returns:
    [size, size, 3] uint8.
  """
  transform_size = transform_size or 4 * size
  img = Image.fromarray(images.to_uint8(np.asarray(image)))
  quad, qsize = ffhq_quad(landmarks)

  shrink = _shrink(qsize, size)
  if shrink > 1:
    img = img.resize(_shrunk_size(img.size[0], img.size[1], shrink), Image.LANCZOS)
    quad, qsize = quad / shrink, qsize / shrink

  border = max(int(np.rint(qsize * 0.1)), 3)
  lo, hi = np.floor(quad.min(axis=0)).astype(int), np.ceil(quad.max(axis=0)).astype(int)
  crop = (max(lo[0] - border, 0), max(lo[1] - border, 0),
          min(hi[0] + border, img.size[0]), min(hi[1] + border, img.size[1]))
  if crop[2] - crop[0] < img.size[0] or crop[3] - crop[1] < img.size[1]:
    img = img.crop(crop)
    quad = quad - np.asarray(crop[:2], np.float64)

  lo, hi = np.floor(quad.min(axis=0)).astype(int), np.ceil(quad.max(axis=0)).astype(int)
  margins = (max(border - lo[0], 0), max(border - lo[1], 0),
             max(hi[0] - img.size[0] + border, 0), max(hi[1] - img.size[1] + border, 0))
  if pad and max(margins) > border - 4:
    margins = tuple(int(m) for m in np.maximum(margins, int(np.rint(qsize * 0.3))))
    padded = _pad_reflect_blend(np.asarray(img, np.float32), margins, qsize)
    img = Image.fromarray(np.uint8(np.clip(np.rint(padded), 0, 255)), "RGB")
    quad = quad + np.asarray(margins[:2], np.float64)

  img = img.transform((transform_size, transform_size), Image.QUAD, tuple((quad + 0.5).flatten()),
                      Image.BILINEAR)
  if size < transform_size:
    img = img.resize((size, size), Image.LANCZOS)
  return np.asarray(img, np.uint8)


def align_face_with_transform(image: np.ndarray, landmarks: np.ndarray, size: int = 1024,
                              transform_size: int | None = None,
                              pad: bool = True) -> tuple[np.ndarray, AlignTransform]:
  """:func:`align_face` and the :class:`AlignTransform` from its output back into ``image``.

  Returns:
    ``(aligned, transform)``: aligned [size, size, 3] uint8, identical to ``align_face``'s.
  """
  image = np.asarray(image)
  return (align_face(image, landmarks, size, transform_size, pad),
          align_transform(landmarks, image.shape[:2], size))


def align_dir(src: str, dst: str, size: int = 1024, detector=None,
              out=print, err=None) -> tuple[int, int, int]:
  """Aligns every image in ``src`` into ``dst`` (PNG, same stem). Returns counts
  ``(aligned, skipped without a face, failed)``; each file gets one line on ``out``/``err``."""
  from sair_jax.face.landmarks import LandmarkDetector

  err = err or (lambda s: print(s, file=sys.stderr))
  if not os.path.isdir(src):
    raise images.ImageIOError(f"{src}: not a directory")
  found = listing.list_folder(src, images.IMAGE_EXTENSIONS)
  names = [os.path.basename(p) for p in found.paths()]
  detector = detector or LandmarkDetector(detect_size=1024)
  os.makedirs(dst, exist_ok=True)
  counts = [0, 0, 0]
  for line in found.clash_lines("photos"):  # one output name for several photos: none written
    err(f"error: {line}")
    counts[2] += 1
  for name in names:
    path = os.path.join(src, name)
    target = os.path.join(dst, os.path.splitext(name)[0] + ".png")
    try:
      image = images.to_uint8(images.read_image(path))
      points = detector.detect(image)
      if points is None:
        err(f"skipped: {path}: no face found")
        counts[1] += 1
        continue
      images.write_image(target, align_face(image, points, size))
    except (images.ImageIOError, ValueError, RuntimeError, OSError, MemoryError) as e:
      err(f"error: {path}: {e}" if not str(e).startswith(path) else f"error: {e}")
      counts[2] += 1
      continue
    out(f"aligned: {path} -> {target}")
    counts[0] += 1
  return tuple(counts)
