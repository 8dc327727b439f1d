"""Default SAIR configuration: ×32 benchmark inputs, the paper's Eq. 8 objective.

Presets import this and patch it (x32.py, x8.py, official.py, smoke.py). Every field can be
overridden on the command line: ``--config.solver.steps=200 --config.data.lq=my_lq``.

``config.objective`` names one of :data:`OBJECTIVES`, a set of loss weights, term variants and
optimiser switches: ``paper`` (Eq. 8 as written) or ``official`` (the authors' released
script). ``get_config(objective)`` writes that set into the config; a preset patches on top.
Choosing another objective on the command line (``--config.objective=paper``) rewrites the
set when ``sair_jax.main`` reads its flags (:func:`apply_objective`). Precedence, highest
first: a ``--config.x.y`` override on the command line; the objective named on the command
line; the preset's own patches; the preset's objective.
"""

import ml_collections


# What each objective sets (dotted config paths; both set the same fields, with the same types).
OBJECTIVES = {
    # Paper Eq. 8 as written: L_d + L_ID + λ||w - w_z||² + a1 L_e + a2 L_hist, with L_d the
    # squared Frobenius norm (a sum over the LQ's values), Eq. 6's expression term, Eq. 7's soft
    # histogram from the first step; Adam at a constant lr, constant generator noise.
    "paper": {
        "loss.fidelity": 1.0, "loss.fidelity_norm": "sum", "loss.fidelity_clamp": -1.0,
        "loss.identity": 1.0, "loss.prior": 0.001, "loss.cross": 0.0,
        "loss.expression": 0.1, "loss.expression_variant": "paper",
        "loss.histogram": 0.05, "loss.histogram_variant": "paper", "loss.histogram_bins": 64,
        "loss.histogram_start": 0, "loss.mask_every": 100,
        "solver.schedule": "constant", "solver.noise": "const", "solver.output": "clip",
        "solver.identity_variant": "standard", "expression.output_shift": False,
    },
    # The authors' released script (SPEC.md): 120·MSE clamped at 1e-4, PULSE's cross loss,
    # 0.4·ID, the rows expression variant, the script's hard-binned histogram from step 200
    # (face mask every 50 steps); cosine lr ramp, fresh noise every step, clamped and min-max
    # normalised output, identity on the 100:900 crop, saved image shifted by γ_e.
    "official": {
        "loss.fidelity": 120.0, "loss.fidelity_norm": "mean", "loss.fidelity_clamp": 1e-4,
        "loss.identity": 0.4, "loss.prior": 0.001, "loss.cross": 0.05,
        "loss.expression": 0.1, "loss.expression_variant": "rows",
        "loss.histogram": 0.05, "loss.histogram_variant": "official", "loss.histogram_bins": 256,
        "loss.histogram_start": 200, "loss.mask_every": 50,
        "solver.schedule": "cosine_ramp", "solver.noise": "random", "solver.output": "minmax",
        "solver.identity_variant": "official", "expression.output_shift": True,
    },
}


# How the optimisation runs (config.recipe), over the objective's weights and term variants.
# 'standard': the objective's own optimiser (the paper's constant lr 0.1, the authors' cosine
# ramp), 400 steps from the reference's w_z. 'fast': see benchmarks/convergence.py and README
# "Speed". A recipe's step count moves the histogram phases with it: their place in the run
# (the objective's histogram_start and mask_every out of 400 steps) is kept.
STANDARD_STEPS = 400
RECIPES = {
    "standard": {
        "solver.steps": STANDARD_STEPS, "solver.lr": 0.1, "solver.chunk": 50,
        "solver.start": "reference", "solver.stop_tol": 0.0, "solver.betas": (0.9, 0.999),
        "solver.rampup": 0.05, "solver.rampdown": 0.25,
    },
    # lr 0.03 held, then a cosine down to 0 over the last 30% of the steps; Adam's β2 0.8 (its
    # step size follows the gradient's current scale, not the first steps' larger one)
    "fast": {
        "solver.steps": 100, "solver.lr": 0.03, "solver.schedule": "cosine_ramp",
        "solver.rampup": 0.0, "solver.rampdown": 0.3, "solver.betas": (0.9, 0.8),
        "solver.chunk": 25, "solver.start": "reference_coarse", "solver.stop_tol": 0.0,
    },
}
_PHASES = ("solver.schedule", "loss.histogram_start", "loss.mask_every")


def _set(c: ml_collections.ConfigDict, path: str, value, keep) -> None:
  if path not in keep:
    group, field = path.split(".")
    c[group][field] = value


def apply_recipe(c: ml_collections.ConfigDict, keep=()) -> ml_collections.ConfigDict:
  """Writes the settings of the recipe ``c.recipe`` into ``c`` (in place; returned).

  The lr schedule and the histogram phases start from the objective's (``c.objective``), the
  phases scaled to the run's step count (the recipe's, or ``c.solver.steps`` when
  ``solver.steps`` is kept; multiples of the chunk). Fields whose dotted path is in ``keep``
  are left alone.
  """
  if c.recipe not in RECIPES:
    raise ValueError(f"config.recipe={c.recipe!r}: expected one of {sorted(RECIPES)}")
  fields = dict({p: OBJECTIVES[c.objective][p] for p in _PHASES}, **RECIPES[c.recipe])
  # the phases follow the steps the run will take: the recipe's, or those kept (command line)
  steps, chunk = (int(c.solver[f]) if f"solver.{f}" in keep else fields[f"solver.{f}"]
                  for f in ("steps", "chunk"))
  for path in ("loss.histogram_start", "loss.mask_every"):
    scaled = fields[path] * steps / STANDARD_STEPS
    fields[path] = int(round(scaled / chunk)) * chunk if scaled else 0
  if OBJECTIVES[c.objective]["loss.mask_every"]:  # a refresh period is at least one chunk
    fields["loss.mask_every"] = max(fields["loss.mask_every"], chunk)
  for path, value in fields.items():
    _set(c, path, value, keep)
  return c


def with_steps(c: ml_collections.ConfigDict, steps: int) -> ml_collections.ConfigDict:
  """A copy of ``c`` whose images take ``steps`` steps, the histogram phases moved with them
  (their place in the run is kept, as a recipe keeps it). ``c`` itself is left as it is."""
  out = ml_collections.ConfigDict(c.to_dict())
  old, steps = int(c.solver.steps), int(steps)
  out.solver.steps = steps
  if steps != old:
    for field in ("histogram_start", "mask_every"):
      value = int(c.loss[field])
      out.loss[field] = max(1, int(round(value * steps / old))) if value else 0
  return out


def apply_objective(c: ml_collections.ConfigDict, keep=()) -> ml_collections.ConfigDict:
  """Writes the settings of the objective ``c.objective`` into ``c`` (in place; returned).

  Fields whose dotted path is in ``keep`` (e.g. the command line's overrides) are left alone.
  """
  if c.objective not in OBJECTIVES:
    raise ValueError(f"config.objective={c.objective!r}: expected one of {sorted(OBJECTIVES)}")
  for path, value in OBJECTIVES[c.objective].items():
    _set(c, path, value, keep)
  return c


def get_config(objective: str = "paper", recipe: str = "standard"):
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
  # Other sources instead of data.lq (sair_jax/pipeline/restore.py):
  c.data.photos = ""  # folder of ordinary photos: faces found, restored, pasted back (wild.py)
  c.data.tfds = ""  # NAME[:SPLIT] of a prepared TFDS dataset of faces: the ground truth
  c.data.tfds_dir = ""  # where it is prepared ('': $TFDS_DATA_DIR or ~/tensorflow_datasets)
  c.data.tfds_image_key = ""  # its image feature ('': the only one, or 'image')
  c.data.tfds_preset = "x32"  # how its LQ is made: 'x32' | 'x8' (as python -m sair_jax.degrade)
  c.data.video = ""  # a clip, or a folder of clips: every face restored through time (video.py)

  # Ordinary photos (data.photos): which faces, and how they go back into the photo.
  c.wild = ml_collections.ConfigDict()
  c.wild.min_face = 32.0  # smallest face restored: side of its FFHQ crop square, photo pixels
  c.wild.min_score = 0.3  # detections scoring less are not faces (measured: README, detect.py)
  c.wild.upscale = 1  # restored photos at this integer multiple of the original size (bicubic)
  c.wild.paste_region = "square"  # blended part of each face: 'square' | 'head' | 'face'
  c.wild.feather = 0.1  # soft edge of that region, a fraction of the aligned face's side

  # Video (data.video; configs/video.py, sair_jax/pipeline/video.py). Faces are found and
  # pasted back as photos' are (the wild fields above); loss.temporal weighs the temporal term.
  c.video = ml_collections.ConfigDict()
  c.video.window = 4  # consecutive frames restored together (one batch of every face in them)
  c.video.warm_steps = 100  # steps of a face started from its track's last solved frame
  c.video.warm_lr = 0.0  # its learning rate (0: solver.lr); Adam's first steps move by ~lr
  c.video.anchor_every = 0  # K > 0: a track's face is cold again once K were restored since
  #   its last cold one (a warm track drifts in what the LQ does not show; temporal.py)
  c.video.anchor_pull = 0.01  # a re-anchored cold face's temporal weight toward the track's
  #   last solved code, x loss.temporal (holds the clip steady across the anchor)
  c.video.landmark_sigma = 2.0  # temporal smoothing of each track's landmarks, frames
  c.video.max_gap = 5  # frames a person may be missed and keep their track by position
  c.video.max_jump = 0.5  # largest move between frames, in face sizes, for the same track
  c.video.min_similarity = 0.5  # descriptor similarity to rejoin a person who came back
  c.video.min_track = 3  # tracks with fewer detections are dropped (spurious detections)
  c.video.crf = 18  # H.264 quality of the restored clip (lower: better, larger)
  c.video.known_answer_frames = 0  # > 0: restore the known-answer clip instead (smoke)
  c.video.known_answer_rate = 25  # its frame rate

  # Expression: 'none' | 'csv' (expression.file: name,expression) | 'tag' (file stem ends in
  # _<expression>) | 'infer' (classifier on the upsampled LQ).
  c.expression = ml_collections.ConfigDict()
  c.expression.mode = "none"
  c.expression.file = ""
  c.expression.gammas = ml_collections.ConfigDict(dict(
      neutral=3.0, angry=5.0, sad=8.0, happy=3.0, surprise=3.0, fear=3.0, disgust=2.5))

  # Objective: c.objective picks the values of these fields from OBJECTIVES (set at the end):
  #   loss.fidelity, identity, prior (λ), cross (PULSE), expression (a1; only for images with
  #     an expression), histogram (a2): the weights of Eq. 8 (+ cross)
  #   loss.fidelity_norm: 'sum' (||·||², Eq. 3) | 'mean' (MSE); fidelity_clamp (< 0: none)
  #   loss.expression_variant: 'paper' (Eq. 6) | 'rows' (authors' mean |cos|)
  #   loss.histogram_variant: 'paper' (Eq. 7, soft) | 'official' (the script's hard bins);
  #     histogram_bins; histogram_start (step it switches on); mask_every (mask refresh period)
  #   solver.schedule: 'constant' | 'cosine_decay' | 'cosine_ramp'; solver.noise: 'const' |
  #     'random' (fresh every step) | 'zero'; solver.output ([-1, 1] -> [0, 1]): 'clip' | 'minmax';
  #     solver.identity_variant (ArcFace preprocessing): 'standard' | 'official'
  #   expression.output_shift: save G(w + γ_e Δw_e) (authors' script)
  c.objective = objective
  c.loss = ml_collections.ConfigDict()
  c.loss.expression_gamma = 0.0  # γ inside the expression term, 1 - cos(w + γΔw, Δw)
  c.loss.histogram_size = 256  # side at which the histogram compares faces
  # Video only (configs/video.py): weight of ||w_t - w_s||², w_s the solved neighbouring frame
  # each frame starts from. 0: frames are independent images.
  c.loss.temporal = 0.0

  # Degradation model D inside the fidelity term (the LQ's own degradation).
  c.degradation = ml_collections.ConfigDict()
  c.degradation.blur_sigma = 0.0  # Gaussian blur σ at generator resolution (0: none)
  c.degradation.jpeg_quality = -1.0  # differentiable JPEG quality (< 0: none)

  # Optimisation.
  c.solver = ml_collections.ConfigDict()
  c.solver.steps = 400
  c.solver.lr = 0.1
  c.solver.betas = (0.9, 0.999)  # Adam's
  # The cosine_ramp schedule's ramps, as fractions of the steps (0: none): the authors' 5%
  # warm-up and cosine down to 0 over the last 25%
  c.solver.rampup = 0.05
  c.solver.rampdown = 0.25
  # Where each image starts (sair_jax/core/schedules.py): 'reference' (w_z, the paper),
  # 'reference_coarse' (w_z's coarse rows, the mean latent for the fine rows) or 'truncated'
  # (w_avg + start_psi (w_z - w_avg)). The prior term stays centred on w_z.
  c.solver.start = "reference"
  c.solver.start_psi = 0.7
  c.solver.fine_rows_from = 0  # first 'fine' W+ row (0: half the rows, 9 of 18 at 1024 px)
  c.solver.coarse_lr_scale = 1.0  # lr multipliers of the coarse and the fine rows
  c.solver.fine_lr_scale = 1.0
  c.solver.fine_rows_start = 0  # the fine rows stay still for this many steps (coarse first)
  # Images per compiled batch. 0 = auto: the largest batch whose compiled program fits the
  # device's memory (solver.memory_budget_gib on a CPU), rematerialising when that fits twice
  # as many; a batch that still runs out of memory is halved and retried.
  c.solver.batch_size = 0
  c.solver.max_batch = 32  # auto never goes beyond this
  c.solver.memory_budget_gib = 0.0  # > 0: memory per device for auto (0: the device's own)
  c.solver.chunk = 50  # steps per compiled call (progress is reported between chunks)
  # Per-image early stopping (0: off): an image leaves the batch, and the next one takes its
  # slot, once its mean total loss over the last stop_window steps (0: one chunk) improved by
  # less than stop_tol (relative) on the window before, after at least stop_min_steps steps.
  c.solver.stop_tol = 0.0
  c.solver.stop_min_steps = 0
  c.solver.stop_window = 0
  # 'auto' = sair_jax/core/backend_defaults.py: bfloat16 on GPUs, float32 elsewhere (W+, Adam
  # and the losses are float32 either way).
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

  # Multi-host: jax.distributed.initialize(); each process restores every n-th image and
  # writes manifest-host<i>.json. Empty / -1: found by JAX from the cluster (SLURM, MPI, TPU).
  c.distributed = False
  c.coordinator_address = ""  # e.g. "10.0.0.1:1234" (process 0's host)
  c.num_processes = 0
  c.process_id = -1
  c.untrained = False  # smoke preset: random networks, no checkpoints
  c.recipe = recipe  # how the optimisation runs: RECIPES above
  return apply_recipe(apply_objective(c))
