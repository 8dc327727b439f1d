"""Paper robustness setting: 128×128 inputs with assorted degradations, ×8 to 1024×1024.

The fidelity term's D is bicubic ×8 by default; when the test set was made with blur or JPEG,
model them too, e.g. ``--config.degradation.jpeg_quality=40 --config.degradation.blur_sigma=8``.
Objective as in x32.py: the authors' weights (``official``), ``--config.objective=paper`` for
Eq. 8 as written.
"""

from sair_jax.configs import default


def get_config():
  c = default.get_config("official")
  c.preset = "x8"
  c.output = "outputs/x8"
  c.data.lq_size = 128
  return c
