"""Identity metrics: ArcFace cosine similarity (the paper's) and an independent dlib judge.

* :func:`arcface_similarity` — cosine between ArcFace embeddings of two face batches, the
  paper's "Similarity" column (restored vs ground truth) and the identity term SAIR optimises.
* :class:`DlibJudge` / :func:`dlib_judge` — Euclidean distance between dlib's 128-d face
  descriptors (``dlib_face_recognition_resnet_model_v1.dat``, a ResNet trained apart from
  ArcFace, shipped in PyPI ``face_recognition_models``). SAIR never optimises it, so it cannot be
  gamed by the restoration; dlib's own rule of thumb reads a distance below 0.6 as "same person"
  (:data:`JUDGE_SAME_PERSON`). Optional: ``pip install 'sair_jax[landmarks]'``; without it (or
  when no face is found) the judge answers None. ``$SAIR_FACE_DESCRIPTOR_MODEL`` overrides the
  model path.
"""

from __future__ import annotations

import functools
import os

import jax.numpy as jnp
import numpy as np

from sair_jax.core import losses
from sair_jax.face import landmarks

DESCRIPTOR_FILE = "dlib_face_recognition_resnet_model_v1.dat"
JUDGE_SAME_PERSON = 0.6  # dlib's threshold on descriptor distance


def arcface_similarity(arcface, x01, y01, variant: str = "official") -> np.ndarray:
  """ArcFace cosine [B] between face batches [B, H, W, 3] in [0, 1] (any resolutions).

  ``arcface`` is a loaded :mod:`sair_jax.nets.arcface` model; ``variant`` its preprocessing
  (``"official"``: the authors' crop of FFHQ-aligned faces, ``"standard"``: whole image).
  """
  fx = arcface.embed_faces(jnp.asarray(x01, jnp.float32), variant=variant)
  fy = arcface.embed_faces(jnp.asarray(y01, jnp.float32), variant=variant)
  return np.asarray(losses.cosine_similarity(fx, fy))


# ------------------------------------------------------------------------- dlib descriptor judge


def descriptor_model_path() -> str | None:
  """The dlib face-descriptor model, or None when neither the env var nor the package has it."""
  env = os.environ.get("SAIR_FACE_DESCRIPTOR_MODEL")
  if env:
    return env if os.path.isfile(env) else None
  predictor = landmarks.predictor_path()
  if predictor is None:
    return None
  path = os.path.join(os.path.dirname(predictor), DESCRIPTOR_FILE)
  return path if os.path.isfile(path) else None


def judge_available() -> bool:
  """Whether dlib, the landmark predictor and the descriptor model are all installed."""
  return landmarks.available() and descriptor_model_path() is not None


class DlibJudge:
  """dlib's 128-d face descriptor on the largest face found by :mod:`sair_jax.face.landmarks`."""

  def __init__(self, model: str | None = None, detector: landmarks.LandmarkDetector | None = None):
    try:
      import dlib
    except ImportError:
      raise landmarks.LandmarksUnavailable(
          f"dlib is not installed: {landmarks.INSTALL_HINT}") from None
    path = model or descriptor_model_path()
    if path is None or not os.path.isfile(path):
      raise landmarks.LandmarksUnavailable(f"{path or DESCRIPTOR_FILE}: face descriptor model "
                                           f"not found: {landmarks.INSTALL_HINT}")
    self._dlib = dlib
    try:
      self._net = dlib.face_recognition_model_v1(path)
    except RuntimeError as e:
      raise landmarks.LandmarksUnavailable(f"{path}: cannot load ({e})") from None
    self._detector = detector or landmarks.default_detector()

  def descriptor(self, image01: np.ndarray) -> np.ndarray | None:
    """The 128-d descriptor (float64) of the largest face in ``image01`` [H, W, 3], or None."""
    rgb = landmarks._to_uint8(image01)  # pylint: disable=protected-access
    points = self._detector.detect(rgb)  # [68, 2] (x, y) or None
    if points is None:
      return None
    dlib = self._dlib
    # The descriptor aligns its 150x150 chip from the landmarks alone; the rectangle only has
    # to hold them.
    x0, y0 = np.floor(points.min(axis=0)).astype(int)
    x1, y1 = np.ceil(points.max(axis=0)).astype(int)
    shape = dlib.full_object_detection(
        dlib.rectangle(int(x0), int(y0), int(x1), int(y1)),
        dlib.points([dlib.point(int(round(x)), int(round(y))) for x, y in points]))
    return np.asarray(self._net.compute_face_descriptor(rgb, shape), np.float64)  # [128]

  def distance(self, a01: np.ndarray, b01: np.ndarray) -> float | None:
    """Descriptor distance between the faces of two images, or None if either has no face."""
    da = self.descriptor(a01)
    if da is None:
      return None
    db = self.descriptor(b01)
    return None if db is None else float(np.linalg.norm(da - db))


@functools.lru_cache(maxsize=1)
def default_judge() -> DlibJudge:
  """One shared judge per process (raises LandmarksUnavailable when not installed)."""
  return DlibJudge()


def dlib_judge(restored01: np.ndarray, reference01: np.ndarray) -> float | None:
  """dlib descriptor distance between a restored face and its reference ([H, W, 3] in [0, 1]).

  None when dlib or its models are not installed, or when either image shows no detectable
  face (tiny or badly restored images). Lower is more alike; > 0.6 reads as another person.
  """
  if not judge_available():
    return None
  try:
    judge = default_judge()
  except landmarks.LandmarksUnavailable:
    return None
  return judge.distance(np.asarray(restored01), np.asarray(reference01))
