"""The engine's records and how a test set makes them: LQ faces, their references, ground truth
and requested expressions.

An :class:`Item` holds each input as a file or as pixels in memory (:func:`load_pixels` reads
either when the engine prepares its batch). :func:`discover` pairs the files of a test-set
folder into items without touching pixels; :func:`pair` does the same for LQ faces a flow
made itself (a dataset's examples). Every problem
with one image becomes a :class:`Failure` for that image (reported in the manifest) while the
rest of the set goes on; a problem with the run as a whole (no LQ folder, a broken CSV, an
unknown mode) is a :class:`~sair_jax.errors.ConfigError`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Callable, Union

import numpy as np

from sair_jax.errors import ConfigError, UserError
from sair_jax.face.expression import EXPRESSIONS, canonical_name
from sair_jax.io import listing, tables
from sair_jax.io.images import IMAGE_EXTENSIONS, read_image

LATENT_EXTENSIONS = (".npy", ".pt", ".pth")


Pixels = Union[str, np.ndarray, Callable[[], np.ndarray]]  # a file, [H, W, 3], or a loader


@dataclasses.dataclass(frozen=True, eq=False)
class Item:
  """One image to restore: a record the engine takes (immutable: a stage that learns more
  returns a replaced copy).

  Every input is a file path or held in memory, so a flow that makes its inputs itself
  (photos, a dataset, the smoke problem) hands them over without writing them first.
  """
  name: str  # the key of every output (restored/NAME.png, ...)
  lq: Pixels  # the degraded face: a path, [h, w, 3] in [0, 1] (or uint8), or a loader
  reference: str | np.ndarray | None = None  # an image or W+ file (.npy, authors'
  # latents.pt), aligned face pixels [S, S, 3], or a W+ code [L, D]; None: from the pool
  gt: Pixels | None = None  # ground truth, for the strips
  expression: str | None = None  # canonical expression name, or None
  origin: str = ""  # what the LQ is, for messages, when it is not a file ("photo.jpg, face 0")
  reference_origin: str = ""  # the same for a reference held in memory
  start: np.ndarray | None = None  # [L, D] W+ to start from instead of config.solver.start
  # (video: a solved neighbouring frame's code)
  neighbour: np.ndarray | None = None  # [L, D] the temporal term's centre (loss.temporal)
  neighbour_weight: float = 1.0  # the temporal term's weight for this item, x loss.temporal

  @property
  def where(self) -> str:
    """The LQ's file, or what it was made from: the first word of every message about it."""
    return self.lq if isinstance(self.lq, str) else (self.origin or self.name)

  @property
  def reference_where(self) -> str:
    """The reference's file, or what it was made from."""
    if isinstance(self.reference, str):
      return self.reference
    return self.reference_origin or f"the reference of {self.name}"

  @property
  def reference_is_latent(self) -> bool:
    """The reference is a W+ code (a file of one, or an array of rank <= 2)."""
    if isinstance(self.reference, np.ndarray):
      return self.reference.ndim <= 2
    return self.reference is not None and self.reference.lower().endswith(LATENT_EXTENSIONS)


def load_pixels(value: Pixels) -> np.ndarray:
  """[H, W, 3] float32 in [0, 1] from a path (:func:`sair_jax.io.images.read_image`: one-line
  ImageIOError), an array (uint8 or float in [0, 1]) or a loader."""
  if isinstance(value, str):
    return read_image(value)
  x = np.asarray(value() if callable(value) else value)
  if x.dtype == np.uint8:
    return x.astype(np.float32) / 255.0
  return x.astype(np.float32)


def pixel_key(x: np.ndarray) -> str:
  """A cache key for pixels held in memory: their shape, dtype and a digest of their values
  (the same pixels give the same key in every run)."""
  x = np.ascontiguousarray(x)
  return f"pixels|{x.shape}|{x.dtype}|{hashlib.sha1(x.tobytes()).hexdigest()}"


@dataclasses.dataclass(frozen=True, eq=False)
class Pool:
  """Candidate references (pool mode): each one's name (for the manifest's ``pool_choices``)
  and its aligned face, a file or pixels [S, S, 3]."""
  names: tuple[str, ...]
  faces: tuple[str | np.ndarray, ...]


def pool_of_folder(folder: str) -> Pool:
  """The pool of ``config.data.reference_pool``: its images (clashing names logged apart).

  Raises :class:`ConfigError` when the folder is missing or empty.
  """
  from sair_jax.pipeline.outputs import log
  found = listing_of(folder, IMAGE_EXTENSIONS, "config.data.reference_pool")
  for line in found.clash_lines("pool photos"):
    log(line)
  paths = found.paths()
  if not paths:
    raise ConfigError(f"{folder}: the reference pool is empty")
  return Pool(tuple(paths), tuple(paths))


@dataclasses.dataclass(frozen=True)
class Failure:
  name: str
  reason: str  # one line, names the file and the problem


def listing_of(folder: str, extensions=IMAGE_EXTENSIONS,
               what: str = "folder") -> listing.Listing:
  """The files of ``folder`` by stem, any case of extension (:mod:`sair_jax.io.listing`).

  Raises :class:`ConfigError` when ``folder`` does not exist (``what``: the setting naming it).
  """
  try:
    return listing.list_folder(folder, extensions, what)
  except UserError as e:
    raise ConfigError(str(e)) from None


def list_images(folder: str, what: str = "folder") -> list[str]:
  """Image files directly in ``folder`` (any case of extension), sorted; files sharing a stem
  are left out (:func:`listing_of` names them)."""
  return listing_of(folder, IMAGE_EXTENSIONS, what).paths()


stem = listing.stem


def csv_reference(cell: str, pairs: str, references: str = "") -> str:
  """The file a pairs CSV's reference cell names: an absolute path as it is; a relative one
  from the CSV's own folder, or, when no file is there and ``references`` (the
  ``data.references`` folder) is given, from that folder. Whether the file exists is checked
  where it is read."""
  ref = cell if os.path.isabs(cell) else os.path.join(os.path.dirname(os.path.abspath(pairs)),
                                                      cell)
  if not os.path.isfile(ref) and references:
    ref = os.path.join(references, cell)
  return ref


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


HEADER_WORDS = ("lq", "name", "image", "file", "photo")  # a first CSV cell that marks a header
QUOTE_HINT = 'a name with a comma must be in double quotes: "Doe, Jane.png"'


def expression_from_tag(name: str) -> str | None:
  """``obama_sad`` -> 'sad'; None when the last ``_``/``-`` token is not an expression."""
  token = name.replace("-", "_").rsplit("_", 1)[-1]
  try:
    return canonical_name(token)
  except (KeyError, ValueError):
    return None


def expression_name(value: str, where: str) -> str | None:
  """The canonical expression a CSV cell names (None for '' or 'none'); ``where`` (file and
  line) starts the :class:`ConfigError` for an unknown one."""
  if not value or value.lower() == "none":
    return None
  try:
    return canonical_name(value)
  except (KeyError, ValueError):
    hint = f"; {QUOTE_HINT}" if any(c in value for c in "./\\") else ""
    raise ConfigError(f"{where}: unknown expression '{value}' (known: {', '.join(EXPRESSIONS)}"
                      f"{hint})")


def discover(config) -> tuple[list[Item], list[Failure]]:
  """The test set of ``config.data.lq``: every LQ image paired by :func:`pair`.

  Files are found whatever the case of their extension. Two LQ files with one stem are one
  failure under that name, naming both.
  Raises :class:`ConfigError` (one line) for problems with the run as a whole (no LQ folder,
  unreadable CSV); per-image problems are returned as failures.
  """
  data = config.data
  lq_listing = listing_of(data.lq, IMAGE_EXTENSIONS, "config.data.lq")
  if not lq_listing.files and not lq_listing.clashes:
    raise ConfigError(f"{data.lq}: no images ({', '.join(IMAGE_EXTENSIONS)}) found")
  failures = [Failure(name, lq_listing.clash_line(name, "LQ images"))
              for name in sorted(lq_listing.clashes)]
  items, more = pair(config, dict(sorted(lq_listing.files.items())), source=data.lq)
  return items, failures + more


def pair(config, lq: dict[str, Pixels], *, source: str, gt: dict[str, Pixels] | None = None,
         origins: dict[str, str] | None = None) -> tuple[list[Item], list[Failure]]:
  """Pairs LQ faces (name -> file or pixels) with their reference, GT and expression, as
  ``config.data`` and ``config.expression`` say.

  References: ``data.pairs`` (a CSV ``lq,reference[,expression]``), else ``data.references``
  (``NAME.*``, or ``ref_X`` for ``lq_X``), else none (pool mode). GT: ``gt`` when given, else
  ``data.gt`` (``NAME.*``). ``source`` names the LQ faces in messages (a folder, a dataset);
  ``origins``: what each in-memory LQ is, for messages. A reference or GT name held by several
  files is a failure of the image that needs it (:mod:`sair_jax.io.listing`).
  """
  data = config.data
  failures: list[Failure] = []
  reference: dict[str, str | None] = dict.fromkeys(lq)
  problem: dict[str, str] = {}  # name -> why its reference or GT is ambiguous
  csv_expression = {}
  if data.pairs:
    for row in tables.read_rows(data.pairs, what="config.data.pairs", header_words=HEADER_WORDS):
      where = f"{data.pairs}: line {row.line}"
      if len(row.cells) < 2 or not row.cells[1]:
        raise ConfigError(f"{where} needs 'lq,reference[,expression]'")
      if len(row.cells) > 3:
        raise ConfigError(f"{where} has {len(row.cells)} fields, expected "
                          f"'lq,reference[,expression]' ({QUOTE_HINT})")
      expression = expression_name(row.cells[2], where) if len(row.cells) > 2 else None
      name = stem(row.cells[0])
      if name not in lq:
        failures.append(Failure(name, f"{where} names '{row.cells[0]}', which is not in "
                                      f"{source}"))
        continue
      reference[name] = csv_reference(row.cells[1], data.pairs, data.references)
      if len(row.cells) > 2:
        csv_expression[name] = expression
  elif data.references and not data.reference_pool:
    refs = listing_of(data.references, IMAGE_EXTENSIONS + LATENT_EXTENSIONS,
                      "config.data.references")
    for name in lq:
      reference[name], clash = refs.find(_candidate_stems(name))
      if clash:
        problem[name] = clash

  gt = dict(gt) if gt is not None else dict.fromkeys(lq)
  if data.gt and not any(v is not None for v in gt.values()):
    gts = listing_of(data.gt, IMAGE_EXTENSIONS, "config.data.gt")
    for name in lq:
      gt[name], clash = gts.find([name])
      if clash:
        problem.setdefault(name, clash)
  expression = requested_expressions(config, list(lq))
  for name, e in csv_expression.items():  # a pairs CSV's third column wins
    if e is not None:
      expression[name] = e

  ok = []
  origins = origins or {}
  for name, pixels in lq.items():
    ref = reference[name]
    where = pixels if isinstance(pixels, str) else origins.get(name, name)
    if name in problem:
      failures.append(Failure(name, problem[name]))
    elif ref is None and not data.reference_pool:
      looked = data.pairs or data.references or "(no references configured)"
      failures.append(Failure(name, f"{where}: no reference found in {looked}"))
    elif ref is not None and not os.path.isfile(ref):
      failures.append(Failure(name, f"{ref}: reference file does not exist"))
    else:
      ok.append(Item(name, pixels, ref, gt.get(name), expression.get(name),
                     origin=origins.get(name, "")))
  return ok, failures


def requested_expressions(config, names: list[str]) -> dict[str, str | None]:
  """The expression each image asks for, by ``config.expression.mode`` (before a pairs CSV)."""
  mode, file = config.expression.mode, config.expression.file
  if mode == "csv" and not file:
    if not config.data.pairs:
      raise ConfigError("config.expression.mode=csv needs config.expression.file "
                        "(name,expression) or a third column in config.data.pairs")
    return {}
  if mode == "csv":
    table = {stem(r.cells[0]): expression_name(r.cells[1], f"{file}: line {r.line}")
             for r in tables.read_rows(file, what="config.expression.file",
                                       header_words=HEADER_WORDS) if len(r.cells) >= 2}
    return {name: table.get(name) for name in names}
  if mode == "tag":
    return {name: expression_from_tag(name) for name in names}
  if mode in ("none", "infer"):
    return {}  # 'infer' is filled in from the classifier once the LQ pixels are loaded
  raise ConfigError(f"config.expression.mode: unknown mode '{mode}' (none | csv | tag | infer)")
