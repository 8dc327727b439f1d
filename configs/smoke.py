"""Smoke test of an installation or a GPU: the whole pipeline on small UNTRAINED networks.

No checkpoints are read: a random 64 px StyleGAN2 and a random small ArcFace are built in
memory, a few faces are synthesised and degraded into ``<output>/smoke_inputs``, and restored.
The restored images are meaningless pictures; only the mechanics are checked.
"""

from configs import default


def get_config():
  c = default.get_config()
  c.preset = "smoke"
  c.untrained = True
  c.output = "outputs/smoke"
  c.data.lq = ""  # generated under <output>/smoke_inputs
  c.data.references = ""
  c.data.lq_size = 16
  c.solver.steps = 20
  c.solver.chunk = 10
  c.solver.batch_size = 2
  c.solver.lr = 0.05
  c.loss.histogram_start = 10
  c.loss.mask_every = 10
  c.loss.histogram_size = 32
  c.loss.histogram_bins = 16
  c.projection.steps = 10
  c.projection.size = 32
  c.smoke_images = 3
  return c
