"""The authors' released script, as SPEC.md lists it (not the paper's Eq. 8).

120·L_d (MSE clamped at 1e-4) + 0.05·L_cross + 0.4·(1-cos_ID) + 0.001·||w - w_init||²
(+ 0.1·L_e, rows variant) (+ 0.05·L_hist from step 200: the script's hard-binned YUV histogram,
256 bins, squared gaps of un-normalised cumulative counts / 256², at 256 px); cosine lr ramp;
fresh generator noise every step; output clamped and min-max normalised; identity on the
100:900 crop with ImageNet normalisation; the saved result shifted by γ_e along the expression
direction. All of it is ``default.OBJECTIVES["official"]``. Their defects (happy loading the
surprise direction, a 0/255 mask, saving step 380, crashing without a face) are not reproduced.
"""

from sair_jax.configs import default


def get_config():
  c = default.get_config("official")
  c.preset = "official"
  c.output = "outputs/official"
  return c
