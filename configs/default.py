"""Default SAIR configuration: the paper's settings (Eq. 8), ×32 benchmark inputs.

Presets import this and patch it (x32.py, x8.py, official.py, smoke.py). Every field can be
overridden on the command line: ``--config.solver.steps=200 --config.data.lq=my_lq``.
"""

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.preset = "paper"
  c.output = "outputs/run"  # restored images, latents, reports, manifest

  # Converted checkpoints (python -m converters.<net> --src FILE --dst DIR).
  c.checkpoints = ml_collections.ConfigDict()
  c.checkpoints.stylegan2 = "checkpoints/stylegan2-ffhq-1024"
  c.checkpoints.arcface = "checkpoints/arcface-r50"
  c.checkpoints.e4e = "checkpoints/e4e-ffhq"  # optional: without it references are projected
  c.checkpoints.expression = "checkpoints/expression"  # needed for expression.mode='infer'
  c.checkpoints.directions = "checkpoints/directions.npz"  # needed when an expression is used

  # Inputs. References: a folder paired by file stem, a CSV of pairs, or a pool.
  c.data = ml_collections.ConfigDict()
  c.data.lq = "data/lq"  # degraded faces (all the same square size)
  c.data.gt = ""  # optional ground truth (same names), shown in the strips
  c.data.references = "data/references"  # folder: reference of lq/NAME.* is references/NAME.*
  c.data.pairs = ""  # CSV 'lq,reference[,expression]' (file names or paths); overrides the folder
  c.data.reference_pool = ""  # folder: pick each LQ's reference by ArcFace similarity
  c.data.lq_size = 32  # expected LQ side; factor = generator resolution / lq_size

  # Expression: 'none' | 'csv' (expression.file: name,expression) | 'tag' (file stem ends in
  # _<expression>) | 'infer' (classifier on the upsampled LQ).
  c.expression = ml_collections.ConfigDict()
  c.expression.mode = "none"
  c.expression.file = ""
  c.expression.output_shift = False  # save G(w + γ_e Δw_e) (authors' script)
  c.expression.gammas = ml_collections.ConfigDict(dict(
      neutral=3.0, angry=5.0, sad=8.0, happy=3.0, surprise=3.0, fear=3.0, disgust=2.5))

  # Objective (paper Eq. 8): L_d + L_ID + λ||w - w_z||² + a1 L_e + a2 L_hist.
  c.loss = ml_collections.ConfigDict()
  c.loss.fidelity = 1.0
  c.loss.identity = 1.0
  c.loss.prior = 0.001  # λ
  c.loss.cross = 0.0  # PULSE cross loss (authors' script: 0.05)
  c.loss.expression = 0.1  # a1 (only for images with an expression)
  c.loss.histogram = 0.05  # a2
  c.loss.fidelity_clamp = -1.0  # < 0: none (authors: 1e-4)
  c.loss.expression_variant = "paper"  # 'paper' (Eq. 6) | 'rows' (authors' mean |cos|)
  c.loss.expression_gamma = 0.0  # γ inside the expression term, 1 - cos(w + γΔw, Δw)
  c.loss.histogram_variant = "paper"  # 'paper' | 'official'
  c.loss.histogram_bins = 64
  c.loss.histogram_size = 256
  c.loss.histogram_start = 0  # step at which the histogram term switches on
  c.loss.mask_every = 100  # recompute the face mask of the current result every N steps

  # Degradation model D inside the fidelity term (the LQ's own degradation).
  c.degradation = ml_collections.ConfigDict()
  c.degradation.blur_sigma = 0.0  # Gaussian blur σ at generator resolution (0: none)
  c.degradation.jpeg_quality = -1.0  # differentiable JPEG quality (< 0: none)

  # Optimisation.
  c.solver = ml_collections.ConfigDict()
  c.solver.steps = 400
  c.solver.lr = 0.1
  c.solver.schedule = "constant"  # 'constant' | 'cosine_ramp'
  # Images per compiled batch. 0 = auto: the largest batch whose compiled program fits the
  # device's memory (solver.memory_budget_gib on a CPU), rematerialising when that fits twice
  # as many; a batch that still runs out of memory is halved and retried.
  c.solver.batch_size = 0
  c.solver.max_batch = 32  # auto never goes beyond this
  c.solver.memory_budget_gib = 0.0  # > 0: memory per device for auto (0: the device's own)
  c.solver.chunk = 50  # steps per compiled call (progress is reported between chunks)
  c.solver.noise = "const"  # generator noise: 'const' | 'random' (fresh every step) | 'zero'
  c.solver.output = "clip"  # [-1, 1] -> [0, 1]: 'clip' | 'minmax'
  c.solver.identity_variant = "standard"  # ArcFace preprocessing: 'standard' | 'official'
  # 'auto' = sair_jax/backend_defaults.py: bfloat16 on GPUs, float32 elsewhere (W+, Adam and
  # the losses are float32 either way).
  c.solver.compute_dtype = "auto"
  c.solver.remat = False  # rematerialise synthesis blocks (auto batch may turn it on)
  c.solver.upconv = "auto"  # 'separable' | 'folded' 2x up layers (same result; see README)
  c.solver.seed = 0

  # Reference inversion when there is no e4e checkpoint (or with force_projection).
  c.projection = ml_collections.ConfigDict()
  c.projection.steps = 300
  c.projection.lr = 0.05
  c.projection.size = 64  # the reference is matched at this resolution
  c.projection.force = False

  # Report thresholds (flags in the per-image report and the manifest).
  c.report = ml_collections.ConfigDict()
  c.report.min_identity = 0.3
  c.report.min_fidelity_psnr = 20.0  # x32 noise alone caps this near 25-30 dB
  c.report.max_judge_distance = 0.6

  c.distributed = False  # jax.distributed.initialize(); each host restores its slice
  c.untrained = False  # smoke preset: random networks, no checkpoints
  return c
