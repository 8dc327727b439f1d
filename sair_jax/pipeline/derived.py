"""Runs over inputs that a flow prepares itself (photos, a TFDS dataset, the smoke problem).

Each such flow writes an ordinary test set (``lq/``, references, maybe ``gt/``) under the run's
output folder, calls :func:`sair_jax.pipeline.engine.run` on a copy of the config that points at
it (:func:`derived_config`), and adds its own section to the manifest the run wrote
(:func:`record`). The flows need the generator's output side before the run loads the
networks (:func:`generator_resolution`, read from the checkpoint's ``meta.json``).
"""

from __future__ import annotations

from sair_jax.errors import ConfigError
from sair_jax.io import checkpoint
from sair_jax.nets import stylegan2
from sair_jax.pipeline import networks, outputs


def derived_config(config, **data):
  """A copy of ``config`` with ``config.data`` fields replaced (``config`` is left as it is).

  Raises:
    ConfigError: a field ``config.data`` does not have.
  """
  out = config.copy_and_resolve_references()
  for field, value in data.items():
    if field not in out.data:
      raise ConfigError(f"config.data.{field}: no such field (configs/default.py)")
    out.data[field] = value
  return out


def generator_resolution(config) -> int:
  """Output side of the generator ``config`` restores with, without loading it.

  Raises:
    networks.MissingCheckpoints: every required checkpoint that is absent, with its command.
    checkpoint.CheckpointError: the generator's ``meta.json`` is unreadable.
  """
  networks.check_checkpoints(config)
  if config.untrained:
    return networks.SMOKE_G.resolution
  path = config.checkpoints.stylegan2
  meta = checkpoint.read_meta(path, stylegan2.KIND)
  return checkpoint.arch_from_meta(path, stylegan2.Arch, meta.get("arch", {})).resolution


def record(output: str, section: str, value, manifest: dict | None = None) -> dict:
  """Adds ``manifest[section] = value`` to ``output``'s manifest and writes it back.

  Args:
    output: the run's output folder.
    manifest: the manifest to extend; None: the one on disk (``RunFolder.read_manifest``).
  Returns:
    The manifest written.
  """
  folder = outputs.RunFolder(output)
  manifest = dict(folder.read_manifest() if manifest is None else manifest)
  manifest[section] = value
  folder.write_manifest(manifest)
  return manifest
