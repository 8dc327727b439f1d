"""Paper ×32 benchmark: 32×32 inputs (bicubic ×32 + noise) restored to 1024×1024, Eq. 8."""

from configs import default


def get_config():
  c = default.get_config()
  c.preset = "x32"
  c.output = "outputs/x32"
  c.data.lq_size = 32
  return c
