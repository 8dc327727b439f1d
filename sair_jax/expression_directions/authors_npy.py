"""Importing the SAIR authors' expression directions: one ``.npy`` array per expression.

The authors ship ``emotion_<name>.npy`` files ([18, 512], [1, 18, 512] or [1, 512]); each is
matched to its expression *by name* (:func:`expression_of_filename`), broadcast to ``n_latent``
rows and normalised per row (:func:`import_npy`), the original norms kept.
"""

from __future__ import annotations

import os
import re
from typing import Sequence

import numpy as np

from sair_jax.expression_directions.file import Directions, DirectionsError, unit_rows
from sair_jax.face.expression import EXPRESSIONS, canonical_name


def expression_of_filename(path: str) -> str:
  """The one expression named in a file name (``emotion_sad.npy`` -> 'sad')."""
  tokens = re.split(r"[^a-z]+", os.path.splitext(os.path.basename(path))[0].lower())
  found = set()
  for t in tokens:
    try:
      found.add(canonical_name(t))
    except ValueError:
      pass
  if len(found) != 1:
    what = "no" if not found else f"several ({', '.join(sorted(found))})"
    raise DirectionsError(f"{path}: file name names {what} expressions; expected exactly one of "
                          f"{', '.join(EXPRESSIONS)}")
  return found.pop()


def import_npy(paths: Sequence[str], n_latent: int | None = None) -> Directions:
  """Directions from one ``.npy`` per expression, matched by file name.

  Each array's last axis is ``w_dim``; the rest is flattened to rows: 1 row (one w direction,
  broadcast to every W+ row) or ``n_latent`` rows. ``n_latent`` defaults to the row count of
  the multi-row files, else 18 (StyleGAN2 at 1024 px). Every row is normalised to unit length;
  the original norms are kept in ``source_norms``. Expressions without a file are unavailable.
  """
  if not paths:
    raise DirectionsError("no .npy direction files given")
  rows = {}
  for path in paths:
    name = expression_of_filename(path)
    if name in rows:
      raise DirectionsError(f"{path}: a second file for '{name}' (first: {rows[name][0]})")
    try:
      a = np.load(path, allow_pickle=False)
    except FileNotFoundError:
      raise DirectionsError(f"{path}: no such file") from None
    except (OSError, ValueError) as e:
      raise DirectionsError(f"{path}: not a .npy array ({str(e).splitlines()[0]})") from None
    if a.ndim == 0 or a.dtype.kind != "f" or a.size == 0:
      raise DirectionsError(f"{path}: expected a float array [..., w_dim], got {a.dtype} {a.shape}")
    rows[name] = (path, a.reshape(-1, a.shape[-1]))  # [R, D]
  dims = {a.shape[1] for _, a in rows.values()}
  if len(dims) != 1:
    raise DirectionsError(f"files disagree on w_dim: {sorted(dims)}")
  w_dim = dims.pop()
  multi = {a.shape[0] for _, a in rows.values() if a.shape[0] > 1}
  if n_latent is None:
    if len(multi) > 1:
      raise DirectionsError(f"files disagree on the number of W+ rows: {sorted(multi)}")
    n_latent = multi.pop() if multi else 18
  k = len(EXPRESSIONS)
  dirs = np.zeros((k, n_latent, w_dim), np.float32)
  norms = np.zeros((k, n_latent), np.float32)
  available = np.zeros(k, bool)
  for name, (path, a) in rows.items():
    if a.shape[0] not in (1, n_latent):
      raise DirectionsError(f"{path}: {a.shape[0]} rows of {w_dim}; expected 1 or {n_latent}")
    i = EXPRESSIONS.index(name)
    dirs[i], norms[i] = unit_rows(np.broadcast_to(a, (n_latent, w_dim)))
    if not np.all(norms[i] > 0):
      raise DirectionsError(f"{path}: has all-zero rows; cannot normalise")
    available[i] = True
  nan = np.full((k, n_latent), np.nan, np.float32)
  files = ", ".join(os.path.basename(p) for p, _ in rows.values())
  return Directions(dirs, available, np.where(available, -1, 0).astype(np.int64), nan, nan.copy(),
                    norms, f"imported: {files}")
