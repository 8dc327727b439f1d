"""Ground-truth faces from a TensorFlow Datasets dataset (``config.data.tfds=NAME[:SPLIT]``).

A prepared TFDS dataset of aligned faces (e.g. ``celeb_a_hq/1024``, which its users prepare
from the manually downloaded files) is read as the set of ground-truth faces; each is resized to
the generator's resolution if needed, and the low-quality inputs are synthesised from it with
the degradation presets of :mod:`sair_jax.core.degradation_presets` (same functions, same per-image seeds), into
a folder the pipeline reads like any other: ``gt/NAME.png``, ``lq/NAME.png`` and
``lq/NAME.json`` (every parameter drawn). ``python -m sair_jax.degrade --src DST/gt --dst ...``
with the same options re-makes the same LQ bit for bit.

Reading goes through ``tfds.data_source`` (random access, no TensorFlow needed), so the dataset
must be prepared in a random-access file format (``array_record``, TFDS's default for new
builds with ``tfds build --file_format=array_record``); nothing is downloaded or prepared here.
tensorflow-datasets is optional (``pip install -e '.[data]'``) and imported only when used.

``SPLIT`` takes TFDS's split syntax (``train``, ``train[:100]``, ``validation[10%:]``); it
defaults to ``train``. ``NAME`` may carry a config and a version (``celeb_a_hq/256:2.0.0``):
a tail after ``:`` that looks like a version is read as one.
"""

from __future__ import annotations

import os
import re
from typing import Iterator, NamedTuple

import numpy as np
from PIL import Image

from sair_jax.core import degradation_presets as degrade
from sair_jax.errors import UserError
from sair_jax.io import files, images

INSTALL_HINT = "pip install -e '.[data]'"
NAME_KEYS = ("image/filename", "filename", "file_name", "name", "id")  # tried in this order
_VERSION = re.compile(r"^\d+(\.\d+){0,2}$")


class TfdsError(UserError):
  """The dataset cannot be read as faces (the run as a whole stops). One line; names the dataset
  (and the example)."""


class TfdsSource(NamedTuple):
  spec: str  # as given: NAME[:SPLIT]
  name: str  # TFDS name, with config / version
  split: str
  examples: object  # the data source: len() and [i] -> feature dict
  image_key: str  # the image feature read
  name_key: str | None  # a text feature naming the examples, if any


def parse_spec(spec: str) -> tuple[str, str]:
  """``NAME[:SPLIT]`` -> (name, split); split ``train`` when absent."""
  spec = spec.strip()
  name, split = spec, "train"
  depth, cut = 0, -1
  for i, c in enumerate(spec):  # the last ':' outside brackets (a split may hold 'train[:10]')
    depth += (c == "[") - (c == "]")
    cut = i if c == ":" and depth == 0 else cut
  if cut >= 0 and not _VERSION.match(spec[cut + 1:]):
    name, split = spec[:cut], spec[cut + 1:]
  if not name or not split:
    raise TfdsError(f"{spec!r}: expected NAME[:SPLIT], e.g. celeb_a_hq/1024:train[:100]")
  return name, split


def _import_tfds():
  try:
    import tensorflow_datasets as tfds
  except ImportError:
    raise TfdsError(f"tensorflow-datasets is not installed: {INSTALL_HINT}") from None
  return tfds


def _first_line(e: BaseException) -> str:
  text = str(e).strip()
  return text.splitlines()[0] if text else type(e).__name__


def _open(tfds, name: str, split: str, data_dir: str | None):
  """The data source, or a TfdsError that says what to do."""
  where = data_dir or "the default data dir"
  try:
    return tfds.data_source(name, split=split, data_dir=data_dir, download=False)
  except NotImplementedError:  # nothing prepared, or prepared without random access
    try:
      prepared = tfds.builder(name, data_dir=data_dir).is_prepared()
    except Exception:  # the builder itself is the problem: report the first error
      prepared = True
    if not prepared:
      raise TfdsError(f"{name}: not prepared in {where}; build it first, e.g. `tfds build "
                      f"{name} --data_dir=DIR --file_format=array_record`") from None
    raise TfdsError(f"{name}: prepared in {where} without random access (e.g. tfrecord); "
                    f"rebuild it with --file_format=array_record to read it without "
                    f"TensorFlow") from None
  except Exception as e:  # tfds raises assorted types: unknown name, config, split, ...
    raise TfdsError(f"{name}:{split}: {_first_line(e)}") from None


def open_source(spec: str, data_dir: str | None = None, *, image_key: str | None = None,
                name_key: str | None = None) -> TfdsSource:
  """Opens ``NAME[:SPLIT]`` and finds its image feature.

  Args:
    spec: ``NAME[:SPLIT]``.
    data_dir: where the dataset is prepared (None: TFDS's default, ``$TFDS_DATA_DIR`` or
      ``~/tensorflow_datasets``).
    image_key: the image feature; None: the only ``Image`` feature, or ``image`` among several.
    name_key: a text feature naming the examples; None: the first of :data:`NAME_KEYS` present.
  Raises:
    TfdsError: one line.
  """
  tfds = _import_tfds()
  name, split = parse_spec(spec)
  examples = _open(tfds, name, split, data_dir)
  features = examples.dataset_info.features
  image_keys = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
  if image_key is None:
    if len(image_keys) == 1 or "image" in image_keys:
      image_key = image_keys[0] if len(image_keys) == 1 else "image"
    else:
      raise TfdsError(f"{spec}: " + (f"several image features ({', '.join(image_keys)}): choose one"
                                     if image_keys else "no image feature"))
  elif image_key not in image_keys:
    raise TfdsError(f"{spec}: no image feature {image_key!r} (image features: "
                    f"{', '.join(image_keys) or 'none'})")
  texts = [k for k, f in features.items() if isinstance(f, tfds.features.Text)]
  if name_key is None:
    name_key = next((k for k in NAME_KEYS if k in texts), None)
  elif name_key not in features:
    raise TfdsError(f"{spec}: no feature {name_key!r} to name the examples")
  return TfdsSource(spec, name, split, examples, image_key, name_key)


def _safe_stem(text) -> str:
  """A file stem from a feature value: its base name without extension, [A-Za-z0-9._-] only."""
  if isinstance(text, bytes):
    text = text.decode("utf-8", "replace")
  stem = os.path.splitext(os.path.basename(str(text).strip()))[0]
  return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")


def _to_face(image, resolution: int, where: str) -> np.ndarray:
  """An example's image -> [resolution, resolution, 3] float32 in [0, 1]."""
  image = np.asarray(image)
  if image.ndim == 3 and image.shape[-1] == 1:
    image = np.repeat(image, 3, axis=-1)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise TfdsError(f"{where}: expected an RGB image, got shape {image.shape}")
  if image.shape[0] != image.shape[1]:
    raise TfdsError(f"{where}: expected a square aligned face, got "
                    f"{image.shape[1]}x{image.shape[0]}")
  face = images.to_uint8(image) if image.dtype != np.uint8 else image
  face = face.astype(np.float32) / 255.0
  return images.resize_square(face, resolution, Image.LANCZOS)  # [R, R, 3]


def _named_examples(source: TfdsSource,
                    limit: int | None) -> Iterator[tuple[int, str, dict]]:
  """``(index, file-safe name, example)`` in dataset order (see :func:`iter_faces`)."""
  n = len(source.examples) if limit is None else min(limit, len(source.examples))
  fallback = _safe_stem(source.split) or "example"
  seen = set()
  for i in range(n):
    example = source.examples[i]
    name = _safe_stem(example[source.name_key]) if source.name_key else ""
    name = name or f"{fallback}_{i:06d}"
    if name in seen:
      name = f"{name}_{i:06d}"
    seen.add(name)
    yield i, name, example


def iter_faces(source: TfdsSource, resolution: int,
               limit: int | None = None) -> Iterator[tuple[str, np.ndarray]]:
  """Yields ``(name, face [resolution, resolution, 3] float32 in [0, 1])`` in dataset order.

  Names come from the source's name feature (made file-safe), else ``SPLIT_000123``; a name
  met before gets the example's index appended.
  """
  for i, name, example in _named_examples(source, limit):
    yield name, _to_face(example[source.image_key], resolution, f"{source.spec}[{i}] ({name})")


def write_dataset(source: TfdsSource, dst: str, *, resolution: int, preset: str = "x32",
                  seed: int = 0, limit: int | None = None, progress=None,
                  skip_existing: bool = False, **degrade_options) -> list[str]:
  """Writes ``dst``/gt/NAME.png and the synthesised ``dst``/lq/NAME.png + NAME.json.

  Args:
    source: from :func:`open_source`.
    dst: output folder (created).
    resolution: side of the ground truth (the generator's).
    preset, seed, degrade_options: as :func:`sair_jax.core.degradation_presets.degrade_image` (``factor``,
      ``lq_size``, ``x8_stages``, ``noise_var``, ``noise_domain``); the image's key is its GT
      file name, as ``python -m sair_jax.degrade`` over ``dst``/gt would use.
    limit: at most this many examples.
    progress: called as ``progress(done, name)`` after each image (e.g. for a log line).
    skip_existing: keep an example whose three files are all there (a resumed run; the files
      are written atomically, the record last).
  Returns:
    The names, in order (written or kept): example ``i`` is ``names[i]``.
  Raises:
    TfdsError: one line naming the example (bad image, or a size the preset cannot degrade).
  """
  gt_dir, lq_dir = os.path.join(dst, "gt"), os.path.join(dst, "lq")
  os.makedirs(gt_dir, exist_ok=True)
  os.makedirs(lq_dir, exist_ok=True)
  names = []
  for i, name, _ in _named_examples(source, limit):
    file = name + ".png"
    paths = (os.path.join(gt_dir, file), os.path.join(lq_dir, file),
             os.path.join(lq_dir, name + ".json"))
    if not (skip_existing and all(os.path.isfile(p) for p in paths)):
      gt, lq, record = example_faces(source, i, name, resolution=resolution, preset=preset,
                                     seed=seed, **degrade_options)
      images.write_image(paths[0], gt)
      images.write_image(paths[1], lq)
      files.write_json(paths[2], record)
    names.append(name)
    if progress is not None:
      progress(len(names), name)
  return names


def example_gt(source: TfdsSource, index: int, name: str, *, resolution: int) -> np.ndarray:
  """Example ``index``'s face as 8-bit ground truth [resolution, resolution, 3] uint8."""
  face = _to_face(source.examples[index][source.image_key], resolution,
                  f"{source.spec}[{index}] ({name})")
  return images.to_uint8(face)


def example_faces(source: TfdsSource, index: int, name: str, *, resolution: int,
                  preset: str = "x32", seed: int = 0,
                  **degrade_options) -> tuple[np.ndarray, np.ndarray, dict]:
  """Example ``index``'s ground truth, its synthesised LQ (both uint8 [S, S, 3], exactly the
  files :func:`write_dataset` writes) and the LQ's record (every parameter drawn).

  The LQ degrades the 8-bit GT, as ``python -m sair_jax.degrade`` over ``gt/NAME.png`` would
  (same per-image key, from the file name). Raises :class:`TfdsError` (one line).
  """
  gt = example_gt(source, index, name, resolution=resolution)
  file = name + ".png"
  try:
    lq, record = degrade.degrade_image(gt.astype(np.float32) / 255.0, file, preset=preset,
                                       seed=seed, **degrade_options)
  except degrade.DegradeError as e:
    raise TfdsError(f"{source.spec} ({name}): {e}") from None
  record["output"] = file
  record["tfds"] = {"dataset": source.name, "split": source.split, "index": index}
  return gt, images.to_uint8(lq), record


def example_lq(source: TfdsSource, index: int, name: str, **options) -> np.ndarray:
  """Example ``index``'s synthesised LQ, uint8 (:func:`example_faces`'s options)."""
  return example_faces(source, index, name, **options)[1]
