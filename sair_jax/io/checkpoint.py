"""Converted checkpoints on disk: an orbax parameter tree plus a ``meta.json``.

Layout of a converted checkpoint directory ``DST``::

    DST/meta.json   {"kind": "stylegan2", "format": 1, ...architecture...}
    DST/params/     orbax StandardCheckpointer tree (nested dicts of float32 arrays)

Every network's ``load(dst)`` goes through :func:`load` (most through :func:`load_network`),
which turns every way a checkpoint can be missing or damaged into a one-line
:class:`CheckpointError` naming the directory.
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Callable

import jax
import numpy as np

from sair_jax.errors import UserError
from sair_jax.io import files

FORMAT_VERSION = 1


class CheckpointError(UserError):
  """A converted checkpoint is missing, of the wrong kind, or damaged. One line, names the path."""


def save(dst: str | os.PathLike, params: Any, meta: dict, kind: str) -> None:
  """Writes ``params`` (a pytree of arrays) and ``meta`` to ``dst``, replacing what is there.

  The tree is written to a temporary sibling and renamed into place, so an interrupted
  conversion never leaves a half-written checkpoint under ``dst``.
  """
  import orbax.checkpoint as ocp  # imported lazily: only conversion and loading need it

  dst = os.path.abspath(os.fspath(dst))
  tmp = dst + ".partial"
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  params = jax.tree_util.tree_map(lambda a: np.asarray(a), params)
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(os.path.join(tmp, "params"), params)
    ckptr.wait_until_finished()
  files.write_json(os.path.join(tmp, "meta.json"), {"kind": kind, "format": FORMAT_VERSION, **meta})
  shutil.rmtree(dst, ignore_errors=True)
  os.replace(tmp, dst)


def read_meta(dst: str | os.PathLike, kind: str) -> dict:
  """Reads and checks ``dst/meta.json`` for a checkpoint of ``kind``."""
  dst = os.fspath(dst)
  meta_path = os.path.join(dst, "meta.json")
  if not os.path.isdir(dst):
    raise CheckpointError(f"{dst}: checkpoint directory does not exist")
  if not os.path.isfile(meta_path):
    raise CheckpointError(f"{dst}: not a converted checkpoint (no meta.json); "
                          "run the converter first")
  try:
    meta = files.read_json(meta_path)
  except files.UnreadableFileError as e:
    raise CheckpointError(str(e)) from None
  if meta.get("kind") != kind:
    raise CheckpointError(f"{dst}: holds a '{meta.get('kind')}' checkpoint, expected '{kind}'")
  if meta.get("format") != FORMAT_VERSION:
    raise CheckpointError(f"{dst}: checkpoint format {meta.get('format')} is not "
                          f"{FORMAT_VERSION}; convert it again")
  return meta


def load(dst: str | os.PathLike, kind: str) -> tuple[Any, dict]:
  """Returns ``(params, meta)`` of the converted checkpoint ``dst`` (numpy arrays)."""
  import orbax.checkpoint as ocp

  meta = read_meta(dst, kind)
  params_dir = os.path.join(os.path.abspath(os.fspath(dst)), "params")
  if not os.path.isdir(params_dir):
    raise CheckpointError(f"{dst}: parameter tree 'params/' is missing")
  try:
    with ocp.StandardCheckpointer() as ckptr:
      params = ckptr.restore(params_dir)
  except Exception as e:  # orbax raises many types; all mean the same thing to the user
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise CheckpointError(f"{dst}: parameter tree is unreadable ({msg})") from None
  params = jax.tree_util.tree_map(np.asarray, params)
  return params, meta


def arch_from_meta(dst: str | os.PathLike, arch_cls, meta: dict):
  """``arch_cls.from_meta(meta)``, a bad or incomplete ``meta.json`` as one CheckpointError."""
  try:
    return arch_cls.from_meta(meta)
  except (KeyError, TypeError, ValueError) as e:
    reason = f"missing field {e}" if isinstance(e, KeyError) else str(e)
    raise CheckpointError(f"{os.fspath(dst)}: meta.json does not describe the network "
                          f"({reason})") from None


def load_network(dst: str | os.PathLike, kind: str, arch_cls,
                 param_shapes: Callable[[Any], Any]) -> tuple[Any, Any]:
  """``(params, arch)`` of the converted checkpoint ``dst`` of a network whose whole
  ``meta.json`` describes ``arch_cls`` (:func:`arch_from_meta`) and whose parameter tree must
  match ``param_shapes(arch)`` (a tree of shape tuples, :func:`check_shapes`).

  Raises:
    CheckpointError: one line naming ``dst``: missing, of another kind, damaged, or not this
      architecture.
  """
  params, meta = load(dst, kind)
  arch = arch_from_meta(dst, arch_cls, meta)
  check_shapes(os.fspath(dst), params, param_shapes(arch))
  return params, arch


def shape_mismatch(params: Any, expected: Any) -> str | None:
  """How a parameter tree differs from ``expected`` (a tree of shape tuples): missing,
  unexpected and wrong-shaped leaves, the first three of each; None when it matches."""
  got = {jax.tree_util.keystr(k): tuple(np.shape(v))
         for k, v in jax.tree_util.tree_leaves_with_path(params)}
  want = {jax.tree_util.keystr(k): tuple(v)
          for k, v in jax.tree_util.tree_leaves_with_path(
              expected, is_leaf=lambda x: isinstance(x, tuple))}
  missing = sorted(set(want) - set(got))
  extra = sorted(set(got) - set(want))
  wrong = sorted(k for k in set(want) & set(got) if want[k] != got[k])
  parts = []
  if missing:
    parts.append(f"missing {missing[:3]}")
  if extra:
    parts.append(f"unexpected {extra[:3]}")
  if wrong:
    parts.append(f"wrong shape {[(k, got[k], want[k]) for k in wrong[:3]]}")
  return "; ".join(parts) or None


def check_shapes(dst: str, params: Any, expected: Any) -> None:
  """Refuses a parameter tree whose structure or shapes differ from ``expected`` (shape tree)."""
  mismatch = shape_mismatch(params, expected)
  if mismatch:
    raise CheckpointError(f"{dst}: parameters do not match the architecture: {mismatch}")
