"""The directions file (``.npz``): the :class:`Directions` record, how it is saved and loaded.

For the seven expressions of :data:`sair_jax.face.expression.EXPRESSIONS` (in that order):

    directions         [7, n_latent, w_dim] float32  unit normal per W+ row (zeros if unavailable)
    labels             [7] str                       the expression names
    available          [7] bool
    counts             [7] int64     positive samples behind each fit (-1: imported, unknown)
    accuracy           [7, n_latent] held-out accuracy of the one-vs-rest classifier (NaN: unknown)
    balanced_accuracy  [7, n_latent] held-out mean of true-positive and true-negative rates
    source_norms       [7, n_latent] each row's norm before normalisation (imported files)
    source             str           how the file was made
    format             int           :data:`FORMAT_VERSION`
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from sair_jax.face.expression import EXPRESSIONS, canonical_name
from sair_jax.errors import InputError, UserError
from sair_jax.io import files

FORMAT_VERSION = 1


class DirectionsError(UserError):
  """A directions file or work directory is missing, damaged or inconsistent. One line."""


class UnavailableDirection(DirectionsError, InputError):
  """The file has no direction for an expression one image asks for (that image fails alone)."""


# --------------------------------------------------------------------------------------------
# The directions file
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Directions:
  """Unit expression directions per W+ row, with how they were obtained (see module doc)."""
  directions: np.ndarray  # [7, L, D] float32
  available: np.ndarray  # [7] bool
  counts: np.ndarray  # [7] int64
  accuracy: np.ndarray  # [7, L] float32
  balanced_accuracy: np.ndarray  # [7, L] float32
  source_norms: np.ndarray  # [7, L] float32
  source: str
  labels: tuple[str, ...] = EXPRESSIONS

  @property
  def n_latent(self) -> int:
    return self.directions.shape[1]

  @property
  def w_dim(self) -> int:
    return self.directions.shape[2]

  def get(self, name: str) -> np.ndarray:
    """[n_latent, w_dim] unit direction of expression ``name`` (any alias, e.g. 'happiness')."""
    e = canonical_name(name)
    i = self.labels.index(e)
    if not self.available[i]:
      raise UnavailableDirection(f"no direction for '{e}' in the directions file "
                                 f"(source: {self.source})")
    return self.directions[i]


def unit_rows(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Rows of ``v`` [..., D] scaled to unit length (zero rows stay zero), and their norms."""
  norms = np.linalg.norm(v.astype(np.float64), axis=-1)
  safe = np.where(norms > 0, norms, 1.0)
  return (v / safe[..., None]).astype(np.float32), norms.astype(np.float32)


def save_directions(path: str | os.PathLike, d: Directions) -> None:
  """Writes ``d`` to ``path`` (.npz) atomically."""
  path = os.fspath(path)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  files.write_npz(path, {
      "directions": d.directions.astype(np.float32), "labels": np.asarray(d.labels),
      "available": d.available.astype(bool), "counts": d.counts.astype(np.int64),
      "accuracy": d.accuracy.astype(np.float32),
      "balanced_accuracy": d.balanced_accuracy.astype(np.float32),
      "source_norms": d.source_norms.astype(np.float32), "source": np.asarray(d.source),
      "format": np.asarray(FORMAT_VERSION)})


def load_directions(path: str | os.PathLike) -> Directions:
  """Reads a directions file; every problem is a one-line :class:`DirectionsError`."""
  path = os.fspath(path)
  try:
    with np.load(path, allow_pickle=False) as z:
      data = {k: z[k] for k in z.files}
  except FileNotFoundError:
    raise DirectionsError(f"{path}: no such file") from None
  except (OSError, ValueError) as e:
    raise DirectionsError(f"{path}: not a directions .npz file ({str(e).splitlines()[0]})") from None
  need = ("directions", "labels", "available", "counts", "accuracy", "balanced_accuracy",
          "source_norms", "source", "format")
  missing = [k for k in need if k not in data]
  if missing:
    raise DirectionsError(f"{path}: not a directions file (missing {missing})")
  if int(data["format"]) != FORMAT_VERSION:
    raise DirectionsError(f"{path}: directions format {int(data['format'])}, expected "
                          f"{FORMAT_VERSION}")
  labels = tuple(str(s) for s in data["labels"])
  if labels != EXPRESSIONS:
    raise DirectionsError(f"{path}: labels {labels} are not {EXPRESSIONS}")
  dirs = data["directions"]
  if dirs.ndim != 3 or dirs.shape[0] != len(EXPRESSIONS):
    raise DirectionsError(f"{path}: directions have shape {dirs.shape}, expected [7, L, D]")
  return Directions(dirs.astype(np.float32), data["available"].astype(bool),
                    data["counts"].astype(np.int64), data["accuracy"].astype(np.float32),
                    data["balanced_accuracy"].astype(np.float32),
                    data["source_norms"].astype(np.float32), str(data["source"]))
