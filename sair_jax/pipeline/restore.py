"""What one command restores, chosen from the config: ``restore(config) -> manifest``.

Every source is a flow that builds records (:class:`~sair_jax.pipeline.inputs.Item`: pixels or
paths) and hands them to one engine (:mod:`sair_jax.pipeline.engine`), which loads the networks
once, holds the output folder's lock for the whole command and writes the one manifest:

* ``config.data.photos``: ordinary photos; every face is found, restored and pasted back
  (:func:`sair_jax.pipeline.wild.restore_photos`).
* ``config.data.tfds=NAME[:SPLIT]``: ground-truth faces from a prepared TensorFlow Datasets
  dataset; the LQ is synthesised with a degradation preset (:func:`restore_tfds`).
* ``config.data.video``: clips; every face is tracked through time, restored with warm starts
  and pasted back (:func:`sair_jax.pipeline.video.restore_videos`).
* ``config.video.known_answer_frames > 0`` (``configs/video.py:smoke``): a clip with a known
  answer, restored with warm starts and scored (PSNR, flicker;
  :func:`sair_jax.pipeline.video.restore_known_answer_clip`).
* ``config.untrained`` without ``config.data.lq`` (the smoke preset): a problem with a known
  answer built from the random generator, restored and scored (:func:`restore_known_answer`).
* Otherwise the test set of ``config.data.lq`` (:func:`restore_test_set`).
"""

from __future__ import annotations

import functools
import os

from sair_jax.errors import ConfigError
from sair_jax.pipeline import (inputs, known_answer, networks, outputs, tfds_source, video,
                               wild)
from sair_jax.pipeline.engine import Engine

SOURCES = ("photos", "tfds", "video", "known_answer_clip", "known_answer", "test_set")
TFDS_INPUTS = "tfds_inputs"  # <output>/tfds_inputs: gt/ and lq/ from the dataset, for the user


def source(config) -> str:
  """Which of :data:`SOURCES` ``config`` restores.

  Raises:
    ConfigError: more than one of ``data.photos``, ``data.tfds`` and ``data.video`` is set.
  """
  chosen = [k for k in ("photos", "tfds", "video") if config.data.get(k, "")]
  if len(chosen) > 1:
    raise ConfigError(f"config.data.{' and config.data.'.join(chosen)} are all set; choose one")
  if chosen:
    return chosen[0]
  if int(config.get("video", {}).get("known_answer_frames", 0)) > 0:
    return "known_answer_clip"
  if config.untrained and not config.data.lq:
    return "known_answer"
  return "test_set"


def restore(config, engine: Engine | None = None) -> dict:
  """Restores what ``config`` names (:func:`source`); returns the command's manifest.

  ``engine``: one already loaded for ``config`` (its networks are reused); else one is made.
  """
  flows = {"photos": wild.restore_photos, "tfds": restore_tfds,
           "video": video.restore_videos, "known_answer_clip": video.restore_known_answer_clip,
           "known_answer": restore_known_answer, "test_set": restore_test_set}
  kind = source(config)
  if kind in ("photos", "tfds", "video") and config.data.lq:
    outputs.log(f"note: config.data.lq ({config.data.lq}) is not used: config.data.{kind} "
                "is what this command restores")
  return flows[kind](config, engine)


def _pool(config) -> inputs.Pool | None:
  return inputs.pool_of_folder(config.data.reference_pool) if config.data.reference_pool else None


def restore_test_set(config, engine: Engine | None = None) -> dict:
  """Restores every image of ``config.data.lq`` into ``config.output``
  (:func:`sair_jax.pipeline.inputs.discover` -> items -> the engine)."""
  networks.check_checkpoints(config)  # every missing checkpoint named before anything else
  items, failures = inputs.discover(config)
  pool = _pool(config)
  engine = engine or Engine(config)
  with engine.session() as session:
    session.restore(items, failures, pool=pool)
  return session.manifest


def restore_tfds(config, engine: Engine | None = None) -> dict:
  """Restores the faces of ``config.data.tfds`` from LQ synthesised by ``data.tfds_preset``.

  The LQ is made by ``data.tfds_preset`` (``x32``: bicubic by the generator's side /
  ``data.lq_size``, plus noise; ``x8``: down to ``data.lq_size`` with blur, noise and JPEG as
  ``python -m sair_jax.degrade`` draws them) with seed 0, from the 8-bit ground truth. The
  engine takes each example straight from the dataset (read when its batch is prepared); for
  the user, ``<output>/tfds_inputs/{gt,lq}`` hold the same faces as files (examples already
  written are kept), which that command re-makes bit for bit. References come from
  ``data.references``, ``data.pairs`` or ``data.reference_pool`` as for any test set, named by
  the dataset's file names (:func:`sair_jax.pipeline.tfds_source.iter_faces`). The manifest gets
  ``tfds``: the dataset, split, image feature and the number of examples.
  """
  data = config.data
  preset = data.tfds_preset
  if preset not in ("x32", "x8"):
    raise ConfigError(f"config.data.tfds_preset={preset!r}: expected x32 or x8")
  networks.check_checkpoints(config)
  src = tfds_source.open_source(data.tfds, os.path.expanduser(data.tfds_dir) or None,
                                image_key=data.tfds_image_key or None)
  engine = engine or Engine(config)
  resolution = engine.nets.g.resolution
  factor = inputs.lq_factor(data.lq_size, resolution)
  options = dict(resolution=resolution, preset=preset, seed=0,
                 **({"factor": factor} if preset == "x32" else {"lq_size": resolution // factor}))
  with engine.session() as session:
    root = os.path.join(session.root, TFDS_INPUTS)
    outputs.log(f"tfds: {src.name}:{src.split} ({len(src.examples)} example(s), image feature "
                f"'{src.image_key}') -> {root}")
    names = tfds_source.write_dataset(src, root, skip_existing=True, **options)
    examples = list(enumerate(names))  # the dataset's order: example i is names[i]
    lq = {name: functools.partial(tfds_source.example_lq, src, i, name, **options)
          for i, name in examples}
    gt = {name: functools.partial(tfds_source.example_gt, src, i, name, resolution=resolution)
          for i, name in examples}
    origins = {name: f"{src.spec}[{i}] ({name})" for i, name in examples}
    items, failures = inputs.pair(config, lq, source=src.spec, gt=gt, origins=origins)
    session.restore(items, failures, pool=_pool(config))
    session.record("tfds", {
        "dataset": src.name, "split": src.split, "image_key": src.image_key,
        "name_key": src.name_key, "examples": len(names), "preset": preset, "seed": 0,
        "inputs": root})
  return session.manifest


def restore_known_answer(config, engine: Engine | None = None) -> dict:
  """The smoke preset's self-check: restores a problem whose answer is known, and scores it.

  From the (untrained) generator G (:mod:`sair_jax.pipeline.known_answer`): ground truth
  G(w*) for ``config.smoke_images`` random latents, LQ = its bicubic downsampling to
  ``data.lq_size``, and references given as W+ codes that share only w*'s coarse rows, all
  handed to the engine in memory (the strips show the ground truth). The PSNR table of the
  restored images, bicubic upsampling and the references against the ground truth is printed
  (stdout) and recorded as the manifest's ``known_answer``.
  """
  engine = engine or Engine(config)
  g = engine.nets.g
  factor = inputs.lq_factor(config.data.lq_size, g.resolution)
  n = int(config.get("smoke_images", 3))
  problem = known_answer.build_problem(g, n, factor, seed=config.solver.seed)
  with engine.session() as session:
    session.restore(known_answer.items(problem))
    scores = known_answer.score_run(problem, os.path.join(session.root, "restored"))
    print(known_answer.format_scores(scores), flush=True)
    session.record("known_answer", scores)
  return session.manifest
