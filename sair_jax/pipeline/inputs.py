"""Finding a run's inputs: LQ faces, their references, ground truth and requested expressions.

Nothing here touches pixels; it pairs files into frozen :class:`Item` records. Every problem
with one image becomes a :class:`Failure` for that image (reported in the manifest) while the
rest of the set goes on; a problem with the run as a whole (no LQ folder, a broken CSV, an
unknown mode) is a :class:`~sair_jax.errors.ConfigError`.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from typing import Iterable

from sair_jax.errors import ConfigError
from sair_jax.face.expression import EXPRESSIONS, canonical_name
from sair_jax.io.images import IMAGE_EXTENSIONS

LATENT_EXTENSIONS = (".npy", ".pt", ".pth")


@dataclasses.dataclass(frozen=True)
class Item:
  """One image to restore (immutable: a stage that learns more returns a replaced copy)."""
  name: str  # file stem: the key of every output
  lq: str  # path of the degraded face
  reference: str | None = None  # image, .npy W+ or authors' latents.pt; None: from the pool
  gt: str | None = None
  expression: str | None = None  # canonical expression name, or None

  @property
  def reference_is_latent(self) -> bool:
    return self.reference is not None and self.reference.lower().endswith(LATENT_EXTENSIONS)


@dataclasses.dataclass(frozen=True)
class Failure:
  name: str
  reason: str  # one line, names the file and the problem


def _is_image(path: str) -> bool:
  return path.lower().endswith(tuple(IMAGE_EXTENSIONS))


def list_images(folder: str) -> list[str]:
  """Image files directly in ``folder``, sorted by name."""
  if not os.path.isdir(folder):
    raise ConfigError(f"{folder}: no such folder")
  return sorted(os.path.join(folder, f) for f in os.listdir(folder)
                if _is_image(f) and os.path.isfile(os.path.join(folder, f)))


def stem(path: str) -> str:
  return os.path.splitext(os.path.basename(path))[0]


def find_by_stem(folder: str, names: Iterable[str], extensions) -> str | None:
  """``folder/NAME.EXT`` for the first of ``names`` and ``extensions`` (either case) found."""
  for name in names:
    for ext in extensions:
      for candidate in (name + ext, name + ext.upper()):
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
          return path
  return None


def lq_factor(lq_size: int, resolution: int) -> int:
  """The downsampling factor from the generator's side to ``config.data.lq_size``.

  Raises :class:`ConfigError` when ``lq_size`` does not divide ``resolution``.
  """
  lq_size = int(lq_size)
  if lq_size <= 0 or resolution % lq_size:
    raise ConfigError(f"config.data.lq_size={lq_size} does not divide the generator's "
                      f"resolution {resolution}")
  return resolution // lq_size


def _candidate_stems(name: str) -> list[str]:
  """A reference for ``NAME`` is ``NAME.*``; the authors' ``lq_X`` pairs with ``ref_X``."""
  names = [name]
  for lq_tag, ref_tag in (("lq_", "ref_"), ("lq", "ref"), ("_lq", "_ref")):
    if lq_tag in name:
      names.append(name.replace(lq_tag, ref_tag, 1))
  return names


def _read_csv(path: str) -> list[list[str]]:
  if not os.path.isfile(path):
    raise ConfigError(f"{path}: no such file")
  with open(path, newline="") as f:
    rows = [[c.strip() for c in row] for row in csv.reader(f) if row and any(c.strip() for c in row)]
  if rows and rows[0] and rows[0][0].lower() in ("lq", "name", "image", "file"):
    rows = rows[1:]  # header
  return rows


def expression_from_tag(name: str) -> str | None:
  """``obama_sad`` -> 'sad'; None when the last ``_``/``-`` token is not an expression."""
  token = name.replace("-", "_").rsplit("_", 1)[-1]
  try:
    return canonical_name(token)
  except (KeyError, ValueError):
    return None


def _expression(value: str, where: str) -> str | None:
  if not value or value.lower() == "none":
    return None
  try:
    return canonical_name(value)
  except (KeyError, ValueError):
    raise ConfigError(f"{where}: unknown expression '{value}' (known: {', '.join(EXPRESSIONS)})")


def discover(config) -> tuple[list[Item], list[Failure]]:
  """Pairs every LQ image with its reference, GT and expression, as the config says.

  Raises :class:`ConfigError` (one line) for problems with the run as a whole (no LQ folder,
  unreadable CSV); per-image problems are returned as failures.
  """
  data = config.data
  lq_paths = list_images(data.lq)
  if not lq_paths:
    raise ConfigError(f"{data.lq}: no images (.png/.jpg) found")
  lq = {stem(p): p for p in lq_paths}
  failures: list[Failure] = []

  reference: dict[str, str | None] = dict.fromkeys(lq)
  csv_expression = {}
  if data.pairs:
    base = os.path.dirname(os.path.abspath(data.pairs))
    for i, row in enumerate(_read_csv(data.pairs)):
      if len(row) < 2:
        raise ConfigError(f"{data.pairs}: line {i + 1} needs 'lq,reference[,expression]'")
      name = stem(row[0])
      if name not in lq:
        failures.append(Failure(name, f"{data.pairs}: line {i + 1} names '{row[0]}', "
                                      f"which is not in {data.lq}"))
        continue
      ref = row[1] if os.path.isabs(row[1]) else os.path.join(base, row[1])
      if not os.path.isfile(ref) and data.references:
        ref = os.path.join(data.references, row[1])
      reference[name] = ref
      if len(row) > 2:
        csv_expression[name] = _expression(row[2], f"{data.pairs} line {i + 1}")
  elif data.references and not data.reference_pool:
    if not os.path.isdir(data.references):
      raise ConfigError(f"{data.references}: no such folder (config.data.references)")
    for name in lq:
      reference[name] = find_by_stem(data.references, _candidate_stems(name),
                                      tuple(IMAGE_EXTENSIONS) + LATENT_EXTENSIONS)

  gt = {name: find_by_stem(data.gt, [name], tuple(IMAGE_EXTENSIONS)) if data.gt else None
        for name in lq}
  expression = _expressions(config, list(lq))
  for name, e in csv_expression.items():  # a pairs CSV's third column wins
    if e is not None:
      expression[name] = e

  ok = []
  for name, path in lq.items():
    ref = reference[name]
    if ref is None and not data.reference_pool:
      where = data.pairs or data.references or "(no references configured)"
      failures.append(Failure(name, f"{path}: no reference found in {where}"))
    elif ref is not None and not os.path.isfile(ref):
      failures.append(Failure(name, f"{ref}: reference file does not exist"))
    else:
      ok.append(Item(name, path, ref, gt[name], expression.get(name)))
  return ok, failures


def _expressions(config, names: list[str]) -> dict[str, str | None]:
  """The expression each image asks for, by ``config.expression.mode`` (before a pairs CSV)."""
  mode, file = config.expression.mode, config.expression.file
  if mode == "csv" and not file:
    if not config.data.pairs:
      raise ConfigError("config.expression.mode=csv needs config.expression.file "
                        "(name,expression) or a third column in config.data.pairs")
    return {}
  if mode == "csv":
    table = {stem(r[0]): _expression(r[1], file) for r in _read_csv(file) if len(r) >= 2}
    return {name: table.get(name) for name in names}
  if mode == "tag":
    return {name: expression_from_tag(name) for name in names}
  if mode in ("none", "infer"):
    return {}  # 'infer' is filled in from the classifier once the LQ pixels are loaded
  raise ConfigError(f"config.expression.mode: unknown mode '{mode}' (none | csv | tag | infer)")
