"""Paper ×32 benchmark: 32×32 inputs (bicubic ×32 + noise) restored to 1024×1024.

The preset fixes the protocol (LQ size, degradation). Its objective is the authors' weights
(``official``), which restore better than the paper's Eq. 8 on the known-answer test (README,
"Which objective"); ``--config.objective=paper`` gives Eq. 8 as written.
"""

from sair_jax.configs import default


def get_config():
  c = default.get_config("official")
  c.preset = "x32"
  c.output = "outputs/x32"
  c.data.lq_size = 32
  return c
