"""Smoke test of an installation or a GPU: the whole pipeline on small UNTRAINED networks, with a
known answer.

No checkpoints are read: a random 64 px StyleGAN2 and a random small ArcFace are built in
memory. From that generator G a problem whose answer is known is built in memory and handed to
the engine (sair_jax/pipeline/known_answer.py): ground truth G(w*), LQ = its
bicubic ×8 downsampling (8×8), references given as W+ codes that share only w*'s coarse rows.
It is restored and the PSNR of the result, of bicubic upsampling and of the reference against
the ground truth is printed and recorded in the manifest (``known_answer``); a working
installation shows the restored images above both. The pictures themselves are coloured noise.

The objective is the paper's with the terms a random network cannot serve turned down: identity
(a random ArcFace carries no identity) and the prior (the reference's fine rows are wrong by
construction); the generator noise is constant, as in the ground truth.
"""

from sair_jax.configs import default


def get_config():
  c = default.get_config()
  c.preset = "smoke"
  c.untrained = True
  c.output = "outputs/smoke"
  c.data.lq = ""  # '': the known-answer problem (built in memory); a folder: that test set
  c.data.references = ""
  c.data.lq_size = 8
  c.solver.steps = 60
  c.solver.chunk = 20
  c.solver.batch_size = 4
  c.solver.noise = "const"
  c.loss.identity = 0.001
  c.loss.prior = 0.0
  c.loss.histogram_start = 40
  c.loss.mask_every = 20
  c.loss.histogram_size = 32
  c.loss.histogram_bins = 16
  c.projection.steps = 10
  c.projection.size = 32
  c.smoke_images = 3
  return c
