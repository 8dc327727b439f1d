"""Writing and reading the project's files safely: atomic writes, strict JSON, .npy arrays.

Every file is written to a temporary sibling (``.NAME.<random>.tmp``) and renamed into place, so
a killed process leaves either the old file, the new one, or a stray temporary that
:func:`remove_temps` deletes on the next run; never half a file under the real name.

JSON is strict (RFC 8259: no ``NaN``; browsers and ``jq`` refuse it): non-finite floats are
written as the strings ``"nan"``, ``"inf"``, ``"-inf"`` and :func:`read_json` turns them back.
A write that fails (disk full, permissions) raises :class:`OutputError`; a file that cannot be
read back raises :class:`UnreadableFileError`; both one line, naming the path.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
from typing import Any, Mapping

import numpy as np

from sair_jax.errors import UserError

TEMP_SUFFIX = ".tmp"


class OutputError(UserError):
  """A file could not be written (disk full, permissions, ...)."""


class UnreadableFileError(UserError):
  """A file the project wrote earlier (JSON, .npy) is missing, truncated or damaged."""


def _umask() -> int:
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


_MODE = 0o666 & ~_umask()  # what open() would give a new file: the process's umask applied


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
  """Writes ``data`` to ``path`` through a temporary sibling and ``os.replace``; the file gets
  the permissions ``open()`` would give it (the temporary's private 0600 is not kept)."""
  path = os.fspath(path)
  directory = os.path.dirname(os.path.abspath(path))
  tmp = None
  try:
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                               suffix=TEMP_SUFFIX)
    os.fchmod(fd, _MODE)
    with os.fdopen(fd, "wb") as f:
      f.write(data)
    os.replace(tmp, path)
  except OSError as e:
    if tmp is not None:
      try:
        os.unlink(tmp)
      except OSError:
        pass
    raise OutputError(f"{path}: cannot write ({e.strerror or e})") from None


def remove_temps(folder: str | os.PathLike) -> int:
  """Deletes the temporaries an interrupted writer left under ``folder``; returns how many."""
  n = 0
  for root, _, names in os.walk(os.fspath(folder)):
    for name in names:
      if name.startswith(".") and name.endswith(TEMP_SUFFIX):
        try:
          os.unlink(os.path.join(root, name))
          n += 1
        except OSError:
          pass
  return n


# ------------------------------------------------------------------------------ what a file is


def not_what_it_seems(path: str | os.PathLike) -> str | None:
  """Why a file that should hold data (an image, weights, an array) holds none, or None.

  Downloads that failed leave files that look right by name: an empty file, the HTML page of a
  login, error or "virus scan" screen, or a Git LFS pointer (a clone without ``git lfs``).
  Returns a short phrase for an error line (``"empty file"``, ``"an HTML page, not ... "``,
  ``"a Git LFS pointer, not ..."``), or None when the file is none of these (or unreadable).
  """
  try:
    with open(os.fspath(path), "rb") as f:
      head = f.read(512)
  except OSError:
    return None
  if not head:
    return "empty file"
  text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
  if text.startswith(b"<") and (text.startswith((b"<!doctype html", b"<html"))
                                or b"<html" in text):
    return "an HTML page, not the data (the download failed: fetch the file itself)"
  if head.startswith(b"version https://git-lfs.github.com/spec/"):
    return ("a Git LFS pointer, not the data (the file was never downloaded: "
            "git lfs pull, or fetch the file itself)")
  return None


# ------------------------------------------------------------------------------------------- JSON


def jsonable(x: Any) -> Any:
  """Non-finite floats -> 'nan' / 'inf' / '-inf'; numpy scalars and arrays -> Python values."""
  if isinstance(x, Mapping):
    return {str(k): jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [jsonable(v) for v in x]
  if isinstance(x, np.ndarray):
    return jsonable(x.tolist())
  if isinstance(x, np.generic):
    x = x.item()
  if isinstance(x, float) and not math.isfinite(x):
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
  return x


def _from_json(x: Any) -> Any:
  if isinstance(x, dict):
    return {k: _from_json(v) for k, v in x.items()}
  if isinstance(x, list):
    return [_from_json(v) for v in x]
  if isinstance(x, str) and x in ("nan", "inf", "-inf"):
    return float(x)
  return x


def dumps(obj: Any) -> str:
  """Strict JSON text (sorted keys, indented), non-finite floats as strings."""
  return json.dumps(jsonable(obj), indent=1, sort_keys=True, allow_nan=False)


def write_json(path: str | os.PathLike, obj: Any) -> None:
  """Writes ``obj`` as strict JSON, atomically."""
  atomic_write(path, (dumps(obj) + "\n").encode())


def read_json(path: str | os.PathLike, expect: type = dict) -> Any:
  """Reads JSON written by :func:`write_json` (non-finite strings back to floats).

  Raises :class:`UnreadableFileError` (one line) when the file is missing, damaged or does not
  hold an ``expect``.
  """
  path = os.fspath(path)
  try:
    with open(path, encoding="utf-8") as f:
      data = json.load(f)
  except (OSError, ValueError) as e:
    reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e).splitlines()[0]
    raise UnreadableFileError(f"{path}: unreadable JSON ({reason})") from None
  if not isinstance(data, expect):
    raise UnreadableFileError(f"{path}: holds a {type(data).__name__}, expected a "
                              f"{expect.__name__}")
  return _from_json(data)


# ------------------------------------------------------------------------------------------ arrays


def write_npy(path: str | os.PathLike, array: Any) -> None:
  """Writes one array as .npy, atomically."""
  buf = io.BytesIO()
  np.save(buf, np.asarray(array))
  atomic_write(path, buf.getvalue())


def read_npy(path: str | os.PathLike) -> np.ndarray:
  """Reads an .npy (no pickles); :class:`UnreadableFileError` when damaged."""
  path = os.fspath(path)
  try:
    return np.load(path, allow_pickle=False)
  except (OSError, ValueError, EOFError) as e:
    reason = not_what_it_seems(path) or f"unreadable array ({str(e).splitlines()[0]})"
    raise UnreadableFileError(f"{path}: {reason}") from None


def write_npz(path: str | os.PathLike, arrays: Mapping[str, Any]) -> None:
  """Writes named arrays as one .npz (``np.savez``, uncompressed), atomically."""
  buf = io.BytesIO()
  np.savez(buf, **arrays)
  atomic_write(path, buf.getvalue())
