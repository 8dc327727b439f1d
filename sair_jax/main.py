"""Restore a folder of degraded faces with SAIR.

    python -m sair_jax.main --config=configs/x32.py [--config.data.lq=DIR ...]

Everything happens in :func:`sair_jax.pipeline.run.run`; this file only parses flags and turns
expected problems (missing checkpoints, bad folders) into a short message and exit status 1.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "an ml_collections config file "
                                          "(configs/x32.py, x8.py, official.py, smoke.py)",
                                          lock_config=False)


def load_config(flag):
  """The parsed ``--config`` flag, with an objective chosen on the command line applied.

  ``--config.objective=NAME`` rewrites the objective's settings (``configs/default.py``,
  ``OBJECTIVES``) over the preset's, except the fields also given on the command line, which
  win. ``flag`` is ``flags.FLAGS["config"]`` after parsing.
  """
  config = flag.value
  overrides = config_flags.get_override_values(flag)
  if "objective" in overrides:
    from configs import default
    default.apply_objective(config, keep=set(overrides))
  return config


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)
  from sair_jax.io.torch_reader import CheckpointFormatError
  from sair_jax.pipeline import restore, run
  from sair_jax.io.checkpoint import CheckpointError
  from sair_jax.face.directions import DirectionsError
  from sair_jax.pipeline.networks import MissingCheckpoints
  try:
    manifest = restore.restore(load_config(flags.FLAGS["config"]))
  except (MissingCheckpoints, CheckpointError, CheckpointFormatError, DirectionsError,
          run.RunError, FileNotFoundError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  sys.exit(0 if manifest["finished"] or not manifest["failures"] else 2)


if __name__ == "__main__":
  config_flags.mark_flags_as_required(["config"]) if hasattr(config_flags,
                                                             "mark_flags_as_required") else None
  app.run(main)
