"""Ordinary photos: every face found, restored and pasted back (sair_jax/pipeline/wild.py).

    python -m sair_jax.main --config=configs/wild.py \\
        --config.data.photos=photos/ --config.data.references=references/

Each face is restored from the LQ size nearest to its size in the photo (the generator's side
over a power of two), so one photo may hold faces of several sizes. The objective is the
authors' weights, as in x32.py and x8.py. No degradation model beyond bicubic downsampling is
assumed: for visibly blurred or compressed photos set ``degradation.blur_sigma`` or
``degradation.jpeg_quality``.

``--config.untrained=True`` runs the flow on the smoke preset's random networks (a check of the
mechanics, not a restoration); ``configs/wild.py:smoke`` does the same with the smoke preset's
short optimisation as well.
"""

from sair_jax.configs import default
from sair_jax.configs import smoke


def get_config(variant: str = ""):
  if variant not in ("", "smoke"):
    raise ValueError(f"configs/wild.py:{variant}: expected no variant or 'smoke'")
  c = default.get_config("official")
  c.preset = "wild"
  c.output = "outputs/wild"
  c.data.lq = ""
  c.data.references = ""
  c.data.photos = "photos"
  c.data.lq_size = 0  # chosen per face
  if variant == "smoke":
    s = smoke.get_config()
    c.untrained = True
    c.output = "outputs/wild_smoke"
    for group, fields in (("solver", ("steps", "chunk", "batch_size", "lr", "noise")),
                          ("loss", ("identity", "prior", "histogram_start", "mask_every",
                                    "histogram_size", "histogram_bins")),
                          ("projection", ("steps", "size"))):
      for field in fields:
        c[group][field] = s[group][field]
    c.wild.min_face = 16.0
  return c
