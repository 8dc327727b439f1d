"""Every face of an ordinary photo, with the size at which SAIR should restore it.

:func:`find_faces` runs dlib's HOG face detector and 68-point landmark predictor
(:mod:`sair_jax.face.landmarks`) on a copy of the photo scaled so that faces down to
``min_face`` can be found, maps the landmarks back to the photo's pixels, and describes each
face by:

* its FFHQ quad (:func:`sair_jax.face.align.ffhq_quad`) and the quad's side ``qsize`` in photo
  pixels;
* ``lq_size``: the side of the aligned low-quality face to restore from. The generator works at
  ``resolution`` (1024 for FFHQ) and the degradation model downsamples by an integer factor, so
  ``lq_size = resolution / factor`` with ``factor`` a power of two; the one nearest to ``qsize``
  on a log scale is chosen (:func:`lq_size_for`), so the aligned face is resized by a factor
  within [1/sqrt(2), sqrt(2)] of the photo's own scale (or is clipped at 1 <= factor);
* ``transform``: the :class:`sair_jax.face.align.AlignTransform` of ``align_face(photo, landmarks,
  lq_size)``, the map a restored face is pasted back with (:mod:`sair_jax.face.paste`).

Faces whose quad is smaller than ``min_face``, detections that are not faces (below
``min_score``, or landmarks no face has: :func:`implausible`), and photos without any face,
become one-line problems (returned, not printed) that name the photo; nothing raises for them.
Faces are numbered largest first (by ``qsize``).

False faces: dlib's HOG detector runs at its own threshold 0 (lower only when ``min_score`` is
negative), and its score then decides. On the photos at hand real faces score 0.63 to 2.2 and
false ones (the patch on the astronaut's suit, in PNG, in JPEG at quality 85-95, rotated, at
half size) at most 0.13, so :data:`MIN_SCORE` is 0.3 (the README has the table).

Detection scale: a face's detector box is about half its FFHQ quad side (the astronaut test
photo: box 88 px, quad 175 px), and dlib's HOG detector (80 px window, no upsampling) finds the
astronaut down to a quad of about 115 px and misses it at 100 px; faces with a quad below
``DETECTABLE_QSIZE`` = 128 px may be missed. The copy is therefore scaled by
``DETECTABLE_QSIZE / min_face`` (4x for the default ``min_face`` of 32), but its longer side is
kept at most ``max_side`` (a large photo is then searched at a lower scale, and the no-face
message says which face sizes may have been missed).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from PIL import Image

from sair_jax.errors import InputError
from sair_jax.face import align
from sair_jax.io import images

DETECTABLE_QSIZE = 128.0  # quad side (px) of the smallest face the HOG detector finds reliably
MIN_SCORE = 0.3  # detector score below which a detection is not taken as a face (measured)

# Bounds of the 68 landmarks' geometry (see implausible); on the photos at hand real faces
# measure 0.84-1.12, |cos| <= 0.04 and eye widths within 0.92 of each other.
EYES_TO_MOUTH = (0.5, 2.0)  # |eyes' midpoint -> mouth centre| / |eye -> eye|
MAX_SKEW = 0.4  # |cos| of the angle between the eye line and the eyes -> mouth line
MIN_EYE_RATIO = 0.4  # the narrower eye's width / the wider one's


@dataclasses.dataclass(frozen=True, eq=False)
class Face:
  """One face found in a photo."""
  landmarks: np.ndarray  # [68, 2] float64 (x, y) in the photo's pixels
  score: float  # the detector's confidence (higher: surer)
  qsize: float  # side of the FFHQ quad in photo pixels
  lq_size: int  # side of the aligned low-quality face: resolution // factor
  factor: int  # resolution // lq_size, a power of two
  transform: align.AlignTransform  # of align_face(photo, landmarks, lq_size)

  @property
  def resize(self) -> float:
    """How much the aligned face is scaled relative to the photo (lq_size / qsize)."""
    return self.lq_size / self.qsize


@dataclasses.dataclass(frozen=True)
class FaceSearch:
  """What :func:`find_faces` found in one photo."""
  faces: tuple[Face, ...]  # largest first (qsize)
  problems: tuple[str, ...]  # one line each, naming the photo
  scale: float  # the scale of the copy the detector ran on


def lq_size_for(qsize: float, resolution: int) -> int:
  """``resolution / 2^k`` nearest to ``qsize`` on a log scale (an exact tie picks the smaller),
  with ``k >= 0``: faces larger than ``resolution`` are restored at factor 1."""
  if resolution < 1 or resolution & (resolution - 1):
    raise ValueError(f"resolution must be a power of two, got {resolution}")
  if not qsize > 0:
    raise ValueError(f"the face size must be positive, got {qsize}")
  k = math.floor(math.log2(resolution / qsize) + 0.5)
  k = min(max(k, 0), int(math.log2(resolution)))
  return resolution >> k


def detection_scale(height: int, width: int, min_face: float,
                    max_side: int = 4096) -> float:
  """Scale of the copy to search for faces of at least ``min_face`` (quad side, photo px)."""
  return min(DETECTABLE_QSIZE / min_face, max_side / max(height, width))


def _resized(rgb: np.ndarray, scale: float) -> np.ndarray:
  """[H, W, 3] uint8 resized by ``scale`` (bicubic); unchanged at scale 1."""
  h, w = rgb.shape[:2]
  size = (max(1, round(w * scale)), max(1, round(h * scale)))
  if size == (w, h):
    return rgb
  return np.asarray(Image.fromarray(rgb).resize(size, Image.BICUBIC))


def implausible(landmarks: np.ndarray) -> str | None:
  """Why 68 landmarks [68, 2] (x, y) cannot be a face's, or None when they can.

  Checks, all invariant to the face's position, size and roll: the mouth lies below the eyes at
  ``EYES_TO_MOUTH`` times their distance, on a line within ``MAX_SKEW`` of perpendicular to the
  eye line, and the eyes' widths differ by at most ``MIN_EYE_RATIO``.
  """
  lm = np.asarray(landmarks, np.float64)
  left, right = lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)
  eyes, to_mouth = right - left, (lm[48] + lm[54]) / 2 - (left + right) / 2
  d_eyes, d_mouth = np.linalg.norm(eyes), np.linalg.norm(to_mouth)
  if not d_eyes > 0 or not d_mouth > 0:
    return "the eyes or the mouth collapse to a point"
  ratio, skew = d_mouth / d_eyes, float(np.dot(eyes, to_mouth) / d_eyes / d_mouth)
  if not EYES_TO_MOUTH[0] <= ratio <= EYES_TO_MOUTH[1]:
    return f"eyes-to-mouth {ratio:.2f} x the eye distance, outside {EYES_TO_MOUTH}"
  if abs(skew) > MAX_SKEW or eyes[0] * to_mouth[1] - eyes[1] * to_mouth[0] <= 0:
    return f"the mouth is not below the eyes (|cos| {abs(skew):.2f} > {MAX_SKEW})"
  widths = np.linalg.norm(lm[39] - lm[36]), np.linalg.norm(lm[45] - lm[42])
  if min(widths) < MIN_EYE_RATIO * max(widths):
    return f"eye widths {widths[0]:.1f} and {widths[1]:.1f} px"
  return None


def find_faces(photo: np.ndarray, detector=None, *, resolution: int = 1024,
               min_face: float = 32.0, upscale: float | None = None, max_side: int = 4096,
               min_score: float = MIN_SCORE, name: str = "photo") -> FaceSearch:
  """Finds every face in ``photo`` and chooses each one's restoration size.

  Args:
    photo: [H, W, 3] RGB, uint8 or float in [0, 1].
    detector: a :class:`sair_jax.face.landmarks.LandmarkDetector` (its ``detect_all`` is used);
      None: the shared default (raises ``LandmarksUnavailable`` when dlib is not installed).
    resolution: the generator's output side (a power of two).
    min_face: smallest FFHQ quad side, in photo pixels, worth restoring; smaller faces are
      reported as problems.
    upscale: scale of the copy the detector searches; None: :func:`detection_scale`.
    max_side: with ``upscale=None``, the longest side the search copy may have.
    min_score: detections scoring below it are not faces (a problem line each); dlib runs at
      its threshold 0, or at ``min_score`` when that is negative.
    name: how problems name the photo (its path).
  Returns:
    :class:`FaceSearch`.
  Raises:
    InputError: one line naming the photo, when it is not an RGB image.
    ValueError: ``min_face`` or ``upscale`` not positive.
  """
  photo = np.asarray(photo)
  if photo.ndim != 3 or photo.shape[-1] != 3 or min(photo.shape[:2]) < 1:
    raise InputError(f"{name}: expected an RGB photo [H, W, 3], got shape {photo.shape}")
  if not min_face > 0 or (upscale is not None and not upscale > 0):
    raise ValueError(f"{name}: min_face and upscale must be positive, got {min_face}, {upscale}")
  if detector is None:
    from sair_jax.face import landmarks
    detector = landmarks.default_detector()
  h, w = photo.shape[:2]
  scale = upscale if upscale is not None else detection_scale(h, w, min_face, max_side)
  copy = _resized(images.to_uint8(photo), scale)
  sx, sy = copy.shape[1] / w, copy.shape[0] / h  # exact per-axis scales after rounding

  faces, problems, too_small = [], [], 0
  for points, score in detector.detect_all(copy, min(0.0, min_score)):
    lm = (np.asarray(points, np.float64) + 0.5) / np.asarray([sx, sy]) - 0.5  # [68, 2] centres
    _, qsize = align.ffhq_quad(lm)
    cx, cy = lm.mean(axis=0)
    where = f"{name}: a detection at ({cx:.0f}, {cy:.0f})"
    if score < min_score:
      problems.append(f"{where} scores {score:.2f} < min_score {min_score:g}: not taken as a "
                      "face")
      continue
    reason = implausible(lm)
    if reason:
      problems.append(f"{where} has landmarks no face has ({reason}): not taken as a face")
      continue
    if qsize < min_face:
      too_small += 1
      problems.append(f"{name}: face at ({cx:.0f}, {cy:.0f}) is too small to restore "
                      f"({qsize:.0f} px < min_face {min_face:g} px)")
      continue
    lq_size = lq_size_for(qsize, resolution)
    faces.append(Face(landmarks=lm, score=score, qsize=qsize, lq_size=lq_size,
                      factor=resolution // lq_size,
                      transform=align.align_transform(lm, (h, w), lq_size)))
  faces.sort(key=lambda f: -f.qsize)
  if not faces and not too_small:
    problems.append(f"{name}: no face found (searched at {scale:.3g}x; faces with an FFHQ quad "
                    f"under ~{DETECTABLE_QSIZE / scale:.0f} px may be missed)")
  return FaceSearch(tuple(faces), tuple(problems), float(scale))


def align_faces(photo: np.ndarray, faces) -> list[np.ndarray]:
  """Each face of ``faces`` FFHQ-aligned at its ``lq_size``: [lq_size, lq_size, 3] uint8."""
  return [align.align_face(photo, f.landmarks, f.lq_size) for f in faces]
