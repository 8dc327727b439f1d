"""What one run restores, chosen from the config: ``restore(config) -> manifest``.

* ``config.data.photos``: ordinary photos; every face is found, restored and pasted back
  (:func:`sair_jax.pipeline.wild.restore_photos`).
* ``config.data.tfds=NAME[:SPLIT]``: ground-truth faces from a prepared TensorFlow Datasets
  dataset; the LQ is synthesised with a degradation preset (:func:`restore_tfds`).
* ``config.untrained`` without ``config.data.lq`` (the smoke preset): a problem with a known
  answer built from the random generator, restored and scored (:func:`restore_known_answer`).
* Otherwise the test set of ``config.data.lq`` (:func:`sair_jax.pipeline.engine.run`).

The first three prepare an ordinary test set under the output folder, run
:func:`sair_jax.pipeline.engine.run` on it and add their own section to the manifest.
"""

from __future__ import annotations

import os

from sair_jax.errors import ConfigError
from sair_jax.pipeline import (derived, inputs, known_answer, networks, outputs, engine,
                               tfds_source, wild)

SOURCES = ("photos", "tfds", "known_answer", "test_set")
SMOKE_INPUTS = "smoke_inputs"  # <output>/smoke_inputs: the known-answer problem
TFDS_INPUTS = "tfds_inputs"  # <output>/tfds_inputs: gt/ and lq/ from the dataset


def source(config) -> str:
  """Which of :data:`SOURCES` ``config`` restores.

  Raises:
    ConfigError: both ``data.photos`` and ``data.tfds`` are set.
  """
  photos, tfds = config.data.get("photos", ""), config.data.get("tfds", "")
  if photos and tfds:
    raise ConfigError("config.data.photos and config.data.tfds are both set; choose one")
  if photos:
    return "photos"
  if tfds:
    return "tfds"
  if config.untrained and not config.data.lq:
    return "known_answer"
  return "test_set"


def restore(config) -> dict:
  """Restores what ``config`` names (:func:`source`); returns the run's manifest."""
  kind = source(config)
  if kind == "photos":
    return wild.restore_photos(config)
  if kind == "tfds":
    return restore_tfds(config)
  if kind == "known_answer":
    return restore_known_answer(config)
  return engine.run(config)


def restore_tfds(config) -> dict:
  """Writes ``<output>/tfds_inputs/{gt,lq}`` from ``config.data.tfds`` and restores the LQ.

  The LQ is made by ``config.data.tfds_preset`` (``x32``: bicubic by the generator's side /
  ``data.lq_size``, plus noise; ``x8``: down to ``data.lq_size`` with blur, noise and JPEG as
  ``python -m sair_jax.degrade`` draws them) with seed 0, as that command would make it from
  ``gt/``; examples already written are kept. References come from ``data.references``,
  ``data.pairs`` or ``data.reference_pool`` as for any test set (named by the dataset's file
  names, see :func:`sair_jax.pipeline.tfds_source.iter_faces`). The manifest gets ``tfds``:
  the dataset, split, image feature and the number of examples.
  """
  data = config.data
  resolution = derived.generator_resolution(config)
  factor = inputs.lq_factor(data.lq_size, resolution)
  preset = data.tfds_preset
  if preset not in ("x32", "x8"):
    raise ConfigError(f"config.data.tfds_preset={preset!r}: expected x32 or x8")
  options = {"factor": factor} if preset == "x32" else {"lq_size": resolution // factor}
  src = tfds_source.open_source(data.tfds, os.path.expanduser(data.tfds_dir) or None,
                                image_key=data.tfds_image_key or None)
  root = os.path.join(config.output, TFDS_INPUTS)
  outputs.log(f"tfds: {src.name}:{src.split} ({len(src.examples)} example(s), image feature "
              f"'{src.image_key}') -> {root}")
  names = tfds_source.write_dataset(src, root, resolution=resolution, preset=preset,
                                    skip_existing=True, **options)
  manifest = engine.run(derived.derived_config(config, lq=os.path.join(root, "lq"),
                                            gt=os.path.join(root, "gt")))
  return derived.record(config.output, "tfds", {
      "dataset": src.name, "split": src.split, "image_key": src.image_key,
      "name_key": src.name_key, "examples": len(names), "preset": preset, "seed": 0,
      "inputs": root}, manifest)


def restore_known_answer(config) -> dict:
  """The smoke preset's self-check: restores a problem whose answer is known, and scores it.

  From the untrained generator G (:mod:`sair_jax.pipeline.known_answer`): ground truth
  G(w*) for ``config.smoke_images`` random latents, LQ = its bicubic downsampling to
  ``data.lq_size``, and references given as W+ codes that share only w*'s coarse rows. They are
  written under ``<output>/smoke_inputs`` and restored with ``data.gt`` set (the strips show the
  ground truth). The PSNR table of the restored images, bicubic upsampling and the references
  against the ground truth is printed (stdout) and recorded as the manifest's ``known_answer``.
  """
  engine.init_distributed(config)  # before anything touches a device
  nets = networks.load_networks(config)  # checks every checkpoint before any work
  g = nets.g
  factor = inputs.lq_factor(config.data.lq_size, g.resolution)
  n = int(config.get("smoke_images", 3))
  problem = known_answer.build_problem(g, n, factor, seed=config.solver.seed)
  root = os.path.join(config.output, SMOKE_INPUTS)
  known_answer.write_problem(root, problem, reference="latent", ref_dir="references")
  manifest = engine.run(derived.derived_config(
      config, lq=os.path.join(root, "lq"), gt=os.path.join(root, "gt"),
      references=os.path.join(root, "references"), pairs="", reference_pool=""), nets=nets)
  scores = known_answer.score_folder(root, os.path.join(config.output, "restored"),
                                     ref_dir="references")
  print(known_answer.format_scores(scores), flush=True)
  return derived.record(config.output, "known_answer", scores, manifest)
