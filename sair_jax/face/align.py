"""FFHQ-style face alignment of ordinary photos, so that they can serve as SAIR references.

    python -m sair_jax.align --src photos/ --dst aligned/ [--size 1024]

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

Every file problem is one line; a photo without a detectable face is reported and skipped.
"""

from __future__ import annotations

import os
import sys

import numpy as np
from PIL import Image

from sair_jax.io import images


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

  shrink = int(np.floor(qsize / size * 0.5))
  if shrink > 1:
    img = img.resize((int(np.rint(img.size[0] / shrink)), int(np.rint(img.size[1] / shrink))),
                     Image.LANCZOS)
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


def align_dir(src: str, dst: str, size: int = 1024, detector=None,
              out=print, err=None) -> tuple[int, int, int]:
  """Aligns every image in ``src`` into ``dst`` (PNG, same stem). Returns counts
  ``(aligned, skipped without a face, failed)``; each file gets one line on ``out``/``err``."""
  from sair_jax.face.landmarks import LandmarkDetector

  err = err or (lambda s: print(s, file=sys.stderr))
  if not os.path.isdir(src):
    raise images.ImageIOError(f"{src}: not a directory")
  names = sorted(n for n in os.listdir(src)
                 if os.path.splitext(n)[1].lower() in images.IMAGE_EXTENSIONS)
  detector = detector or LandmarkDetector(detect_size=1024)
  os.makedirs(dst, exist_ok=True)
  counts = [0, 0, 0]
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


def main(argv):
  del argv
  from absl import flags
  from sair_jax.face.landmarks import LandmarkDetector, LandmarksUnavailable
  f = flags.FLAGS
  try:
    detector = LandmarkDetector(detect_size=f.detect_size, upsample=f.upsample)
    aligned, skipped, failed = align_dir(f.src, f.dst, f.size, detector)
  except (LandmarksUnavailable, images.ImageIOError, OSError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  print(f"{aligned} aligned, {skipped} without a face, {failed} failed")
  sys.exit(1 if failed else 0)


def define_flags() -> None:
  """The command's flags (absl)."""
  from absl import flags
  flags.DEFINE_string("src", None, "directory of photos")
  flags.DEFINE_string("dst", None, "output directory (PNG, same file stems)")
  flags.DEFINE_integer("size", 1024, "output side (FFHQ: 1024)")
  flags.DEFINE_integer("detect_size", 1024, "face detection runs on a copy at most this large")
  flags.DEFINE_integer("upsample", 0, "dlib detector upsampling passes (finds smaller faces)")
  flags.mark_flags_as_required(["src", "dst"])


def entry() -> None:
  """``python -m sair_jax.align``."""
  from absl import app
  define_flags()
  app.run(main)


if __name__ == "__main__":
  entry()
