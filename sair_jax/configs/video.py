"""Video: every face of a clip restored through time, one identity held by one reference.

    python -m sair_jax.main --config=configs/video.py \\
        --config.data.video=clips/ --config.data.references=references/

References are paired by clip name (``references/CLIP.*`` for everyone in CLIP.mp4, or
``CLIP_pK.*`` for person K), by a CSV (``data.pairs``: ``clip,reference``) or taken from a
pool (``data.reference_pool``). Restored clips go to ``<output>/restored_videos/CLIP.mp4``
(sair_jax/pipeline/video.py). The objective is the authors' weights, as in wild.py, plus the
temporal term; a person's first face is restored in ``solver.steps`` steps, every later face
starts from the last solved frame and takes ``video.warm_steps`` (README "Video": how these
defaults were measured).

``configs/video.py:smoke`` restores a clip with a known answer on the smoke preset's random
networks (no checkpoints, no clip needed) and prints its PSNR and flicker table.
"""

from sair_jax.configs import smoke
from sair_jax.configs import wild


def get_config(variant: str = ""):
  if variant not in ("", "smoke"):
    raise ValueError(f"configs/video.py:{variant}: expected no variant or 'smoke'")
  if variant == "smoke":  # the smoke preset's networks and objective, on the known-answer clip
    c = smoke.get_config()
    c.output = "outputs/video_smoke"
    c.video.known_answer_frames = 12
    c.video.window = 1
    c.video.warm_steps = 15  # a quarter of the smoke preset's 60
    c.video.warm_lr = 0.01
  else:
    c = wild.get_config()
    c.output = "outputs/video"
    c.data.photos = ""
    c.data.video = "clips"
    c.data.references = "references"
    c.video.window = 4
    c.video.warm_steps = 100  # a quarter of solver.steps (README "Video": measured)
    c.video.warm_lr = 0.02
  c.preset = "video"
  c.loss.temporal = 0.01
  c.solver.batch_size = c.video.window  # the window's faces (planning per window recompiles)
  return c
