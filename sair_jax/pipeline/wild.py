"""Ordinary photos in, restored photos out: ``config.data.photos`` (``configs/wild.py``).

:func:`restore_photos` runs the whole flow; each step is a function of its own:

1. :func:`find_photos`: every face of every photo (:func:`sair_jax.face.detect.find_faces`),
   with the LQ size it is restored from (the generator's side over a power of two, nearest to
   the face's size in the photo). Faces are named ``PHOTO_faceK`` (K = 0 for the largest).
2. :func:`pair_references`: each face's reference photo, by file name (``data.references``:
   ``NAME.*`` for the photo ``NAME.*``; a W+ ``.npy``/``.pt`` is used as it is), by a CSV
   (``data.pairs``: ``photo,reference[,expression]``, where ``photo`` may also name one face,
   ``PHOTO_faceK``), or none in pool mode (``data.reference_pool``).
3. :func:`align_references`: reference photos (or the pool) FFHQ-aligned at the generator's
   side, held in memory (and written under ``<output>/wild_inputs/references`` or
   ``reference_pool`` for the user to look at). The run's inversion cache is keyed by the
   aligned pixels, so a rerun finds its inversions again.
4. :func:`group_faces`: the engine's records (:class:`sair_jax.pipeline.inputs.Item`) of every
   face with a reference, its aligned LQ pixels in memory, one group per LQ size (also written
   as ``<output>/wild_inputs/lq<SIZE>/NAME.png`` for the user).
5. One engine session (:mod:`sair_jax.pipeline.engine`): the networks loaded once, the output
   folder locked from step 1 to the end, each LQ size restored in turn (its solver compiled for
   it) into ``<output>`` itself: the face names are unique across sizes, so ``restored/``,
   ``strips/``, ``reports/`` hold every face together, and the reference cache is shared; the
   manifest's ``lq_sizes`` records each size's batch plan, OOM retries and timings.
6. :func:`paste_photos`: every restored face warped back into its photo with its alignment
   transform and a feathered mask (:mod:`sair_jax.face.paste`), written as
   ``<output>/restored_photos/PHOTO.png`` (upscaled by ``config.wild.upscale``). Every photo is
   written, a photo without a face as it is.

Problems with one photo or one face (unreadable, no face, a face below ``wild.min_face``, no
reference, a reference without a face) are one line each in the log and in the manifest's
``wild`` section; the run goes on with the rest. A rerun redoes detection and alignment (cheap),
skips the faces already restored and writes the photos again.
"""

from __future__ import annotations

import dataclasses
import os
import zlib

import numpy as np

from sair_jax.errors import ConfigError, InputError, UserError
from sair_jax.face import align, detect, paste
from sair_jax.io import images, listing, tables
from sair_jax.pipeline import inputs, networks, outputs

INPUTS = "wild_inputs"  # <output>/wild_inputs: aligned faces, references, pairs CSVs
PHOTOS_OUT = "restored_photos"  # <output>/restored_photos/PHOTO.png
SECTION = "wild"  # the manifest's section


@dataclasses.dataclass(frozen=True)
class Photo:
  """One input photo and what was found in it."""
  name: str  # file stem: names its faces and its restored photo
  path: str
  size: tuple[int, int] | None  # (height, width); None when unreadable
  faces: tuple[detect.Face, ...]  # largest first
  problems: tuple[str, ...]  # one line each

  def face_names(self) -> list[str]:
    return [face_name(self.name, k) for k in range(len(self.faces))]


@dataclasses.dataclass(frozen=True)
class Pairing:
  """Each face's reference (a photo, or a W+ file), as the user gave it."""
  references: dict  # face name -> reference path; empty in pool mode
  expressions: dict  # face name -> expression (a CSV's third column)
  pool: str  # the pool folder (pool mode), else ''
  problems: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Group:
  """The faces restored from one LQ size: the engine's records."""
  lq_size: int
  items: tuple[inputs.Item, ...]

  @property
  def names(self) -> tuple[str, ...]:
    return tuple(item.name for item in self.items)


def face_name(photo: str, k: int) -> str:
  return f"{photo}_face{k}"


def check_settings(config) -> None:
  """Raises :class:`ConfigError` for a ``config.wild`` value the flow cannot use."""
  w = config.wild
  if not float(w.min_face) > 0:
    raise ConfigError(f"config.wild.min_face={w.min_face}: must be positive (photo pixels)")
  if not np.isfinite(float(w.min_score)):
    raise ConfigError(f"config.wild.min_score={w.min_score}: must be a finite number (detector "
                      "score; README: the measured table)")
  if int(w.upscale) != w.upscale or int(w.upscale) < 1:
    raise ConfigError(f"config.wild.upscale={w.upscale}: must be a positive integer")
  if w.paste_region not in paste.REGIONS:
    raise ConfigError(f"config.wild.paste_region={w.paste_region!r}: expected one of "
                      f"{', '.join(paste.REGIONS)}")
  if not 0 <= float(w.feather) <= 0.5:
    raise ConfigError(f"config.wild.feather={w.feather}: must be in [0, 0.5] (a fraction of "
                      "the aligned face's side)")
  if not (config.data.pairs or config.data.references or config.data.reference_pool):
    raise ConfigError("photos need references: config.data.references (a folder, paired by "
                      "file name), config.data.pairs (a CSV) or config.data.reference_pool")


def _list_folder(folder: str, what: str, kind: str) -> tuple[list[str], list[str]]:
  """The images of ``folder`` and one problem line per name held by several files (both left
  out; ``kind`` names them in the line, e.g. "photos")."""
  found = listing.list_folder(folder, images.IMAGE_EXTENSIONS, what)
  return found.paths(), found.clash_lines(kind)


# ------------------------------------------------------------------------------------------
# 1. Faces
# ------------------------------------------------------------------------------------------

def find_photos(paths: list[str], *, resolution: int, min_face: float,
                min_score: float = detect.MIN_SCORE, detector=None) -> list[Photo]:
  """Every face of every photo in ``paths`` (file stems unique; problems recorded per photo,
  nothing raised). ``min_score``: see :func:`sair_jax.face.detect.find_faces`."""
  photos = []
  for path in paths:
    name = inputs.stem(path)
    try:
      photo = images.read_image(path)
      search = detect.find_faces(photo, detector, resolution=resolution, min_face=min_face,
                                 min_score=min_score, name=path)
    except InputError as e:
      photos.append(Photo(name, path, None, (), (str(e),)))
      continue
    photos.append(Photo(name, path, photo.shape[:2], search.faces, search.problems))
  return photos


# ------------------------------------------------------------------------------------------
# 2. References
# ------------------------------------------------------------------------------------------


def _from_csv(config, photos: list[Photo]) -> tuple[dict, dict, list[str]]:
  """Pairs from ``config.data.pairs``; a row naming one face overrides its photo's row."""
  path = config.data.pairs
  faces = {p.name: p.face_names() for p in photos}
  owner = {n: p.name for p in photos for n in p.face_names()}
  refs, expressions, problems = {}, {}, []
  rows = tables.read_rows(path, what="config.data.pairs", header_words=inputs.HEADER_WORDS)
  for row in sorted(rows, key=lambda r: inputs.stem(r.cells[0]) in owner):
    photo, reference, expression = row.cell(0), row.cell(1), row.cell(2)
    if not reference:
      raise UserError(f"{path}: line {row.line} needs 'photo,reference[,expression]'")
    if len(row.cells) > 3:
      raise UserError(f"{path}: line {row.line} has {len(row.cells)} fields, expected "
                      f"'photo,reference[,expression]' ({inputs.QUOTE_HINT})")
    if expression:
      inputs.expression_name(expression, f"{path}: line {row.line}")  # one line, now
    key = inputs.stem(photo)
    targets = faces[key] if key in faces else ([key] if key in owner else None)
    if targets is None:
      problems.append(f"{path}: line {row.line} names '{photo}', which is not a photo (or a "
                      f"PHOTO_faceK) in {config.data.photos}")
      continue
    ref = inputs.csv_reference(reference, path, config.data.references)
    for name in targets:  # a face's own row replaces its photo's, expression included
      refs[name] = ref
      expressions.pop(name, None)
      if expression:
        expressions[name] = expression
  return refs, expressions, problems


def pair_references(config, photos: list[Photo]) -> Pairing:
  """Each found face's reference, as ``config.data`` says (module docstring, step 2)."""
  data = config.data
  if data.reference_pool and not data.pairs:
    return Pairing({}, {}, data.reference_pool, ())
  ambiguous = set()  # photos whose reference name is held by several files
  if data.pairs:
    refs, expressions, problems = _from_csv(config, photos)
  else:
    found = listing.list_folder(data.references, images.IMAGE_EXTENSIONS
                                + inputs.LATENT_EXTENSIONS, "config.data.references")
    refs, expressions, problems = {}, {}, []
    for p in photos:
      ref, clash = found.find([p.name]) if p.faces else (None, None)
      if clash:
        problems.append(f"{clash} (the reference of {p.path})")
        ambiguous.add(p.name)
      refs.update({n: ref for n in p.face_names() if ref})
  for p in photos:
    missing = [n for n in p.face_names() if n not in refs]
    if missing and p.name not in ambiguous:
      where = data.pairs or os.path.join(data.references, p.name + ".*")
      problems.append(f"{p.path}: no reference for {len(missing)} face(s) ({where})")
    for n in p.face_names():
      if n in refs and not os.path.isfile(refs[n]):
        problems.append(f"{refs.pop(n)}: reference of {n} does not exist")
  return Pairing(refs, expressions, "", tuple(problems))


# ------------------------------------------------------------------------------------------
# 3. Aligned references
# ------------------------------------------------------------------------------------------


def _aligned_names(paths: list[str]) -> dict[str, str]:
  """A file name for each reference photo: its stem, made unique by a short hash if needed."""
  names, taken = {}, set()
  for path in sorted(paths):
    name = inputs.stem(path)
    if name in taken:
      name = f"{name}-{zlib.crc32(os.path.abspath(path).encode()):08x}"
    taken.add(name)
    names[path] = name + ".png"
  return names


def align_references(paths: list[str], dst: str | None, *, resolution: int, min_face: float,
                     min_score: float = detect.MIN_SCORE,
                     detector=None) -> tuple[dict, dict[str, str]]:
  """FFHQ-aligns the largest face of each reference photo at ``resolution``.

  W+ files (``.npy``, ``.pt``) are passed through as paths. With ``dst``, each aligned face is
  also written there as a PNG, for the user (the run does not read it back).
  Returns:
    ``(aligned, problems)``: reference path -> aligned face [S, S, 3] in [0, 1] (or the W+
    file's path); reference path -> one line, for the references that could not be aligned.
  """
  aligned, problems = {}, {}
  names = _aligned_names([p for p in paths if not p.lower().endswith(inputs.LATENT_EXTENSIONS)])
  for path in sorted(set(paths)):
    if path not in names:
      aligned[path] = path
      continue
    try:
      photo = images.read_image(path)
      search = detect.find_faces(photo, detector, resolution=resolution, min_face=min_face,
                                 min_score=min_score, name=path)
    except InputError as e:
      problems[path] = str(e)
      continue
    if not search.faces:
      problems[path] = "; ".join(search.problems)
      continue
    face = align.align_face(photo, search.faces[0].landmarks, resolution)
    if dst:
      os.makedirs(dst, exist_ok=True)
      images.write_image(os.path.join(dst, names[path]), face)
    aligned[path] = images.to_uint8(face)  # the face as its PNG holds it
  return aligned, problems


# ------------------------------------------------------------------------------------------
# 4. Records per LQ size
# ------------------------------------------------------------------------------------------


def group_faces(photos: list[Photo], references: dict | None, expressions: dict,
                root: str | None = None) -> list[Group]:
  """The engine's records of every face with a reference, one group per LQ size.

  ``references``: face name -> (aligned face pixels, the photo or W+ file they come from);
  None: pool mode, every face. ``expressions``: face name -> canonical expression. With
  ``root``, each aligned LQ face is also written as ``root``/lq<SIZE>/NAME.png for the user
  (faces of a size no longer restored, from an earlier run, are removed there).
  """
  by_size: dict[int, list[inputs.Item]] = {}
  for p in photos:
    chosen = [(n, f) for n, f in zip(p.face_names(), p.faces)
              if references is None or n in references]
    if not chosen:
      continue
    photo = images.read_image(p.path)
    for (name, face), crop in zip(chosen, detect.align_faces(photo, [f for _, f in chosen])):
      crop = images.to_uint8(crop)  # the face as its PNG holds it
      ref, ref_origin = (None, "") if references is None else references[name]
      by_size.setdefault(face.lq_size, []).append(inputs.Item(
          name, crop, ref, expression=expressions.get(name),
          origin=f"{p.path} (face {name.rsplit('face', 1)[-1]})", reference_origin=ref_origin))
  groups = [Group(size, tuple(items)) for size, items in sorted(by_size.items())]
  if root:
    _write_faces(groups, root)
  return groups


def _write_faces(groups: list[Group], root: str) -> None:
  for g in groups:
    folder = os.path.join(root, f"lq{g.lq_size}")
    os.makedirs(folder, exist_ok=True)
    for item in g.items:
      images.write_image(os.path.join(folder, item.name + ".png"), item.lq)
    names = {item.name for item in g.items}
    for path in inputs.list_images(folder):
      if inputs.stem(path) not in names:
        os.remove(path)


# ------------------------------------------------------------------------------------------
# 6. Photos
# ------------------------------------------------------------------------------------------


def paste_photos(photos: list[Photo], folder: outputs.RunFolder, dst: str, *, upscale: int,
                 region: str, feather: float) -> dict[str, list[str]]:
  """Pastes each photo's restored faces back; writes ``dst``/PHOTO.png for every readable
  photo, with the photo's own alpha channel when it has one (upscaled with it). Returns photo
  name -> the faces pasted."""
  os.makedirs(dst, exist_ok=True)
  pasted = {}
  for p in photos:
    if p.size is None:
      continue
    done = [(n, f) for n, f in zip(p.face_names(), p.faces) if folder.done(n)]
    faces = [images.read_image(folder.path("restored", n, ".png")) for n, _ in done]
    photo = images.decode(p.path)  # its straight colours: the alpha goes back on unchanged
    canvas = paste.paste_faces(photo.rgb, faces, [f.transform for _, f in done],
                               region=region, feather=feather, scale=upscale)
    alpha = photo.alpha
    if alpha is not None and upscale > 1:
      alpha = paste.upscale_photo(np.repeat(alpha[..., None], 3, axis=-1), upscale)[..., 0]
    images.write_image(os.path.join(dst, p.name + ".png"), images.with_alpha(canvas, alpha))
    pasted[p.name] = [n for n, _ in done]
  return pasted


# ------------------------------------------------------------------------------------------
# The flow
# ------------------------------------------------------------------------------------------


def _face_record(name: str, face: detect.Face, reference, restored: bool) -> dict:
  cx, cy = face.landmarks.mean(axis=0)
  return {"name": name, "lq_size": face.lq_size, "factor": face.factor,
          "face_size": round(face.qsize, 1), "score": round(face.score, 3),
          "centre": [round(float(cx), 1), round(float(cy), 1)], "reference": reference,
          "restored": restored}


@dataclasses.dataclass(frozen=True)
class Plan:
  """Everything prepared for the engine (steps 1-4)."""
  photos: list[Photo]
  pairing: Pairing
  groups: list[Group]
  pool: inputs.Pool | None  # the aligned pool (pool mode)
  problems: list[str]  # every photo's and reference's lines
  failures: list[inputs.Failure]  # the faces found but not restored, and why


def prepare(config, *, resolution: int, detector, root: str | None = None) -> Plan:
  """Steps 1-4: finds the faces, pairs and aligns the references, makes the records.

  ``root``: where the aligned faces and references are also written for the user (None: not
  written).
  """
  min_face = float(config.wild.min_face)
  paths, problems = _list_folder(config.data.photos, "config.data.photos", "photos")
  if not paths and not problems:
    raise UserError(f"{config.data.photos}: no photos ({', '.join(images.IMAGE_EXTENSIONS)}) "
                    "found")
  photos = find_photos(paths, resolution=resolution, min_face=min_face,
                       min_score=float(config.wild.min_score), detector=detector)
  pairing = pair_references(config, photos)
  problems += [line for p in photos for line in p.problems] + list(pairing.problems)
  if pairing.pool:
    sources, clashes = _list_folder(pairing.pool, "config.data.reference_pool", "pool photos")
    problems += clashes
  else:
    sources = sorted(set(pairing.references.values()))
  refs_dir = os.path.join(root, "reference_pool" if pairing.pool else "references") if root \
      else None
  aligned, bad = align_references(sources, refs_dir, resolution=resolution, min_face=min_face,
                                  min_score=float(config.wild.min_score), detector=detector)
  for path, line in bad.items():
    users = sorted(n for n, r in pairing.references.items() if r == path)
    problems.append(line + (f" (reference of {', '.join(users)})" if users else ""))
  pool = None
  if pairing.pool:
    references = None if aligned else {}  # None: every face (the engine picks from the pool)
    if aligned:
      pool = inputs.Pool(tuple(aligned), tuple(aligned.values()))
    else:
      problems.append(f"{pairing.pool}: no usable reference in the pool")
  else:
    references = {n: (aligned[r], r) for n, r in pairing.references.items() if r in aligned}
  expressions = {n: inputs.expression_name(e, f"{config.data.pairs} (face {n})")
                 for n, e in pairing.expressions.items()}
  names = [n for p in photos for n in p.face_names()]
  requested = inputs.requested_expressions(config, names) if config.expression.mode != "csv" \
      or config.expression.file else {}
  expressions = {**{n: e for n, e in requested.items() if e}, **expressions}
  groups = group_faces(photos, references, expressions, root)
  return Plan(photos, pairing, groups, pool, problems,
              _unrestorable(photos, pairing, references, bad, config))


def _unrestorable(photos: list[Photo], pairing: Pairing, references: dict | None,
                  bad: dict[str, str], config) -> list[inputs.Failure]:
  """A failure for every face found that has no usable reference (the manifest's
  ``failures`` cover every face)."""
  out = []
  for p in photos:
    for k, name in enumerate(p.face_names()):
      if references is None or name in references:
        continue
      ref = pairing.references.get(name)
      if pairing.pool:
        reason = f"{pairing.pool}: no usable reference in the pool"
      elif ref is None:
        where = config.data.pairs or os.path.join(config.data.references, p.name + ".*")
        reason = f"{p.path}: no reference for face {k} ({where})"
      else:
        reason = bad.get(ref, f"{ref}: reference of {name} is unusable")
      out.append(inputs.Failure(name, reason))
  return out


def _record(plan: Plan, pasted: dict, settings: dict) -> dict:
  """The manifest's ``wild`` section (see :func:`restore_photos`)."""
  photos = {}
  for p in plan.photos:
    photos[p.name] = {
        "file": p.path, "size": list(p.size) if p.size else None,
        "output": os.path.join(PHOTOS_OUT, p.name + ".png") if p.name in pasted else None,
        "faces": [_face_record(n, f, plan.pairing.references.get(n), n in pasted.get(p.name, ()))
                  for n, f in zip(p.face_names(), p.faces)],
        "problems": list(p.problems)}
  groups = {f"lq{g.lq_size}": {"lq_size": g.lq_size, "faces": list(g.names)}
            for g in plan.groups}
  return {"photos": photos, "problems": plan.problems, "groups": groups, "settings": settings}


def restore_photos(config, engine=None) -> dict:
  """Restores every face of every photo in ``config.data.photos`` (module docstring).

  ``engine``: a loaded :class:`sair_jax.pipeline.engine.Engine` for ``config`` (else one is
  made: the networks are loaded once, for every LQ size).
  Returns:
    The manifest: the engine's fields (``finished`` and ``failures`` over every face,
    ``lq_sizes`` with each size's batch plan and timings), and ``wild``: ``photos`` (per photo:
    file, size, output, faces with their LQ size, factor, face size, detector score, centre,
    reference, restored), ``problems`` (every line), ``groups`` (the faces of each LQ size)
    and ``settings``.
  """
  from sair_jax.pipeline.engine import Engine
  check_settings(config)
  if not os.path.isdir(config.data.photos):  # before the output folder is made
    raise UserError(f"{config.data.photos}: no such folder (config.data.photos)")
  networks.check_checkpoints(config)
  engine = engine or Engine(config)
  resolution = engine.nets.g.resolution
  from sair_jax.face import landmarks
  with engine.session() as session:  # the folder is locked before anything is written
    plan = prepare(config, resolution=resolution, detector=landmarks.default_detector(),
                   root=os.path.join(session.root, INPUTS))
    for line in plan.problems:
      outputs.log(line)
    n_faces = sum(len(p.faces) for p in plan.photos)
    sizes = ", ".join(f"{len(g.items)} at {g.lq_size} px" for g in plan.groups)
    outputs.log(f"{len(plan.photos)} photo(s), {n_faces} face(s) found, "
                f"{sum(len(g.items) for g in plan.groups)} to restore"
                + (f" in {len(plan.groups)} LQ size(s): {sizes}" if plan.groups else ""))
    session.fail(plan.failures)
    for g in plan.groups:
      outputs.log(f"restoring the {len(g.items)} face(s) of LQ size {g.lq_size}")
      session.restore(g.items, lq_size=g.lq_size, pool=plan.pool)
    w = config.wild
    pasted = paste_photos(plan.photos, session.folder, os.path.join(session.root, PHOTOS_OUT),
                          upscale=int(w.upscale), region=w.paste_region,
                          feather=float(w.feather))
    settings = {"resolution": resolution, "min_face": float(w.min_face),
                "min_score": float(w.min_score), "upscale": int(w.upscale),
                "paste_region": w.paste_region, "feather": float(w.feather)}
    session.record(SECTION, _record(plan, pasted, settings))
    outputs.log(f"wild: {sum(map(len, pasted.values()))} of {n_faces} face(s) restored into "
                f"{len(pasted)} photo(s), {len(plan.problems)} problem(s) -> "
                f"{os.path.join(session.root, PHOTOS_OUT)}")
  return session.manifest
