"""Restore a folder of degraded faces with SAIR.

    python -m sair_jax.main --config=configs/x32.py [--config.data.lq=DIR ...]
    sair-jax --config=configs/x32.py [...]          (the same command, installed as a script)

Everything happens in :func:`sair_jax.pipeline.restore.restore` (a test set, ordinary photos,
video clips, a TFDS dataset or a smoke preset's known-answer problem or clip, each a flow that
hands its records to :mod:`sair_jax.pipeline.engine`); this file parses flags and turns the
errors a user can fix (:class:`sair_jax.errors.UserError`: a missing checkpoint, a bad folder, a
bad config) into one line and exit status 1. Any other exception is a bug and keeps its
traceback. Exit status 2: the run finished but no image was restored and some failed (listed in
the manifest); a run that restored some and failed others exits 0 (see `failures`).
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from sair_jax.configs import preset_path
from sair_jax.errors import ConfigError, UserError

_CONFIG = config_flags.DEFINE_config_file("config", None, "an ml_collections config file, or a "
                                          "preset: configs/x32.py (or x32), x8, official, "
                                          "smoke, wild, video (found in the package from any "
                                          "folder)",
                                          lock_config=False)
USAGE = "usage: python -m sair_jax.main --config=configs/x32.py [--config.FIELD=VALUE ...]"


def load_config(flag):
  """The parsed ``--config`` flag, with an objective or recipe chosen on the command line.

  ``--config.objective=NAME`` rewrites the objective's settings (``sair_jax/configs/default.py``,
  ``OBJECTIVES``) over the preset's, and ``--config.recipe=NAME`` the recipe's (``RECIPES``;
  a preset's recipe other than 'standard' is written again over a new objective), except the
  fields also given on the command line, which win. ``flag`` is ``flags.FLAGS["config"]``
  after parsing.
  """
  config = flag.value
  if config is None:
    raise ConfigError(f"no --config given\n{USAGE}")
  try:
    config.keys()  # ml_collections reports a missing or broken file when the config is read
  except (OSError, ImportError, SyntaxError) as e:
    detail = str(e.__cause__ or e).strip().splitlines()
    detail = [line.strip() for line in detail if line.strip()][-1]
    raise ConfigError(f"--config: cannot load the config file ({detail})\n{USAGE}") from None
  overrides = config_flags.get_override_values(flag)
  from sair_jax.configs import default
  if "objective" in overrides:
    default.apply_objective(config, keep=set(overrides))
  if "recipe" in overrides or ("objective" in overrides and config.recipe != "standard"):
    default.apply_recipe(config, keep=set(overrides))
  return config


def with_presets(argv: list[str]) -> list[str]:
  """``argv`` with a ``--config`` that names a preset pointed at the packaged file
  (:func:`sair_jax.configs.preset_path`), so the documented form runs from any folder."""
  out = list(argv)
  for i, arg in enumerate(out):
    if arg.startswith("--config="):
      out[i] = "--config=" + preset_path(arg[len("--config="):])
    elif arg == "--config" and i + 1 < len(out):
      out[i + 1] = preset_path(out[i + 1])
  return out


def parse_flags(argv):
  """absl's flag parsing, with a bad ``--config`` file or field as a one-line usage error."""
  try:
    return flags.FLAGS(with_presets(argv))
  except flags.Error as e:
    message = str(e).splitlines()[0] if str(e) else type(e).__name__
  except (AttributeError, KeyError) as e:  # ml_collections: an override names no config field
    message = f"--config: unknown config field {str(e).strip(chr(34))}"
  except (OSError, ImportError, SyntaxError) as e:  # the config file itself
    message = f"--config: cannot load the config file ({str(e).splitlines()[0]})"
  print(f"error: {message}\n{USAGE}", file=sys.stderr)
  sys.exit(1)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)
  from sair_jax.pipeline import restore
  try:
    manifest = restore.restore(load_config(flags.FLAGS["config"]))
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  sys.exit(0 if manifest["finished"] or not manifest["failures"] else 2)


def cli():
  """The ``sair-jax`` console script: the same command as ``python -m sair_jax.main``."""
  app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  cli()
