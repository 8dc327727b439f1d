"""The presets (ml_collections config files), shipped inside the package.

``--config`` takes a preset by its file path; :func:`preset_path` lets the documented form
(``configs/x32.py``, or just ``x32``) name the packaged file from any working directory, while a
path to an existing file (a user's own config) is used as it is.
"""

from __future__ import annotations

import os

PRESETS = ("x32", "x8", "official", "smoke", "wild", "video")
FOLDER = os.path.dirname(os.path.abspath(__file__))


def preset_path(value: str) -> str:
  """The config file ``--config=value`` means.

  ``value`` is ``PATH[:VARIANT]``. An existing file PATH is kept (a folder of that name, such as
  an output folder called ``smoke``, is not a config); otherwise a PATH whose file name is
  a preset's (``configs/x32.py``, ``x32.py``, ``x32``) becomes that preset's packaged file,
  with the variant kept (``configs/wild.py:smoke``). Anything else is returned unchanged (the
  loader reports the missing file).
  """
  path, sep, variant = value.partition(":")
  if os.path.isfile(path):
    return value
  name = os.path.basename(path)
  name = name[:-3] if name.endswith(".py") else name
  if name in PRESETS:
    return os.path.join(FOLDER, f"{name}.py") + sep + variant
  return value
