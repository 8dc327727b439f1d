"""Video: every face of a clip restored through time, one identity held by one reference.

    python -m sair_jax.main --config=configs/video.py \\
        --config.data.video=clips/ --config.data.references=references/

References are paired by clip name (``references/CLIP.*`` for everyone in CLIP.mp4, or
``CLIP_pK.*`` for person K), by a CSV (``data.pairs``: ``clip,reference``) or taken from a
pool (``data.reference_pool``). Restored clips go to ``<output>/restored_videos/CLIP.mp4``
(sair_jax/pipeline/video.py). The objective is the authors' weights, as in wild.py, plus the
temporal term; a person's first face is restored cold in ``solver.steps`` steps, every later
face starts from the last solved frame and takes ``video.warm_steps``, and every
``video.anchor_every``-th face is cold again (README "Video": how these defaults were
measured).

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
    c.loss.temporal = 0.01
  else:
    c = wild.get_config()
    c.output = "outputs/video"
    c.data.photos = ""
    c.data.video = "clips"
    c.data.references = "references"
    # measured on the known-answer clip (README "Video"): a cold face every 4, 40 warm steps
    # between (130 steps per frame, a third of 400), one frame at a time
    c.video.update({"window": 1, "warm_steps": 40, "warm_lr": 0.01, "anchor_every": 4,
                    "anchor_pull": 0.01})
    c.loss.temporal = 0.03
  c.preset = "video"
  c.solver.batch_size = c.video.window  # the window's faces (planning per window recompiles)
  return c
