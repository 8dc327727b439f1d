"""The authors' released script, as SPEC.md lists it (not the paper's Eq. 8).

120·L_d (MSE clamped at 1e-4) + 0.05·L_cross + 0.4·(1-cos_ID) + 0.001·||w - w_init||²
(+ 0.1·L_e, rows variant) (+ 0.05·L_hist from step 200, 256 bins, YUV, un-normalised counts
/ 256², at 256 px); cosine lr ramp; fresh generator noise every step; output clamped and
min-max normalised; identity on the 100:900 crop with ImageNet normalisation; the saved
result shifted by γ_e along the expression direction. Their defects (happy loading the surprise
direction, a 0/255 mask, saving step 380, crashing without a face) are not reproduced.
"""

from configs import default


def get_config():
  c = default.get_config()
  c.preset = "official"
  c.output = "outputs/official"
  c.loss.fidelity = 120.0
  c.loss.identity = 0.4
  c.loss.prior = 0.001
  c.loss.cross = 0.05
  c.loss.expression = 0.1
  c.loss.histogram = 0.05
  c.loss.fidelity_clamp = 1e-4
  c.loss.expression_variant = "rows"
  c.loss.histogram_variant = "official"
  c.loss.histogram_bins = 256
  c.loss.histogram_size = 256
  c.loss.histogram_start = 200
  c.loss.mask_every = 50
  c.expression.output_shift = True
  c.solver.schedule = "cosine_ramp"
  c.solver.noise = "random"
  c.solver.output = "minmax"
  c.solver.identity_variant = "official"
  return c
