"""Warm-started against cold-started frames on the known-answer clip, side by side in one run.

    PYTHONPATH=. python benchmarks/video.py [--frames 12] [--cold_steps 400] \
        [--warm_steps 50,100,133] [--warm_lr 0.02] [--temporal 0,0.01] [--window 4] \
        [--variants STEPS:LR:LAMBDA:WINDOW[:ANCHOR[:PULL]],...] [--out video.json]

The clip is ``configs/video.py:smoke``'s (``sair_jax.pipeline.known_answer.build_clip``: the
smoke preset's random 64 px generator, frames G(w*_t) along a smooth path in W+, LQ ×8, one
reference of the same latent identity), restored through the engine exactly as the command
does, with the smoke preset's objective (Eq. 8, identity and prior turned down) and
``--cold_steps`` per cold frame (the histogram phases moved with the step count):

* ``cold``: every frame an independent image, from the reference's w_z, ``--cold_steps``
  steps, no temporal term (what an image restorer run frame by frame does);
* ``warm k, lr, λ``: the video flow (``sair_jax.pipeline.temporal``): a track's first frame
  cold, every other frame started from the last solved frame, ``k`` steps at learning rate
  ``lr``, temporal weight λ, in windows of ``--window`` frames; with ``ANCHOR`` = K > 0 a cold
  frame again once K frames were restored since the last (``video.anchor_every``), pulled
  toward the last solved frame at ``PULL`` times λ (``video.anchor_pull``; default the config's).

For each: mean PSNR against the ground truth, flicker (1.0 = as steady as the truth), mean
steps per frame, and seconds per frame / frames per second of the restoration without
compilation (same CPU, same process, one after the other). Results go to ``--out`` (JSON).
"""

from __future__ import annotations

import json
import os
import tempfile
import time

from absl import app, flags, logging
import numpy as np

from sair_jax.configs import default, video as video_config
from sair_jax.io import images
from sair_jax.pipeline import known_answer, progress, video
from sair_jax.pipeline.engine import Engine

FLAGS = flags.FLAGS
flags.DEFINE_integer("frames", 12, "frames of the known-answer clip")
flags.DEFINE_integer("cold_steps", 400, "steps of a cold-started frame (the authors' 400)")
flags.DEFINE_list("warm_steps", ["50", "100", "133"], "steps of a warm-started frame")
flags.DEFINE_list("temporal", ["0", "0.01"], "temporal term weights (loss.temporal)")
flags.DEFINE_list("warm_lr", ["0.02"], "learning rates of warm-started frames (solver.lr: 0.1)")
flags.DEFINE_integer("window", 4, "consecutive frames restored together (cold: the batch)")
flags.DEFINE_list("variants", ["100:0.01:0.01:1", "40:0.01:0.03:1:4:0", "40:0.01:0.03:1:4:0.01",
                                "40:0.01:0.03:4:4:0.01", "40:0.02:0.03:4:4:0.01"], "warm runs as STEPS:LR:LAMBDA:WINDOW[:ANCHOR[:PULL]] (instead of the grid "
                  "of --warm_steps x --warm_lr x --temporal at --window)")
flags.DEFINE_string("out", "", "JSON file for the results (default: print only)")


def _config(output: str, steps: int, **video_fields):
  c = video_config.get_config("smoke")
  c = default.with_steps(c, steps)
  c.output = output
  c.video.known_answer_frames = FLAGS.frames
  c.video.window = FLAGS.window
  c.solver.batch_size = FLAGS.window
  for k, v in video_fields.items():
    if k == "temporal":
      c.loss.temporal = float(v)
    else:
      c.video[k] = v
  return c


def _cold(root: str, nets) -> dict:
  """Every frame restored as an independent image (the frame-by-frame baseline)."""
  config = _config(os.path.join(root, "cold"), FLAGS.cold_steps)
  config.loss.temporal = 0.0
  engine = Engine(config, nets=nets)
  g = nets.g
  factor = g.resolution // int(config.data.lq_size)
  problem = known_answer.build_clip(g, FLAGS.frames, factor, seed=int(config.solver.seed))
  items = known_answer.items(problem, prefix="frame")
  clock = progress.CompileClock()
  t0 = time.perf_counter()
  with engine.session() as session:
    session.restore(items)
    restored = np.stack([images.read_image(session.folder.path("restored", it.name, ".png"))
                         for it in items])
  seconds = time.perf_counter() - t0 - clock.seconds()
  scores = video.score_clip(problem, restored)
  scores.update(seconds=seconds, steps_per_frame=float(FLAGS.cold_steps))
  return scores


def _warm(root: str, nets, steps: int, weight: float, lr: float, window: int,
          anchor_every: int = 0, anchor_pull: float | None = None) -> dict:
  fields = dict(warm_steps=steps, temporal=weight, warm_lr=lr, window=window,
                anchor_every=anchor_every)
  if anchor_pull is not None:
    fields["anchor_pull"] = anchor_pull
  config = _config(os.path.join(root, f"warm{steps}_{weight:g}_{lr:g}_{window}_{anchor_every}_"
                                f"{anchor_pull}"), FLAGS.cold_steps, **fields)
  config.solver.batch_size = window
  clock = progress.CompileClock()
  t0 = time.perf_counter()
  manifest = video.restore_known_answer_clip(config, Engine(config, nets=nets))
  seconds = time.perf_counter() - t0 - clock.seconds()
  scores = dict(manifest["video"]["known_answer"])
  n = scores["frames"]
  scores.update(seconds=seconds,
                steps_per_frame=(scores["cold_faces"] * FLAGS.cold_steps
                                 + scores["warm_faces"] * steps) / n)
  return scores


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  from sair_jax.pipeline import networks
  nets = networks.load_networks(video_config.get_config("smoke"))
  rows = {}
  with tempfile.TemporaryDirectory() as root:
    rows["cold"] = _cold(root, nets)
    grid = [f"{k}:{lr}:{lam}:{FLAGS.window}" for k in FLAGS.warm_steps
            for lr in FLAGS.warm_lr for lam in FLAGS.temporal]
    for variant in FLAGS.variants or grid:
      k, lr, lam, window, *anchor = variant.split(":")
      anchor_every = int(anchor[0]) if anchor else 0
      pull = float(anchor[1]) if len(anchor) > 1 else None
      r = _warm(root, nets, int(k), float(lam), float(lr), int(window), anchor_every, pull)
      name = f"warm {k}, lr {float(lr):g}, λ {float(lam):g}, window {window}"
      if anchor_every:
        name += f", anchor {anchor_every} pull {r['anchor_pull']:g}"
      rows[name] = r
  print(f"\nknown-answer clip: {FLAGS.frames} frames, window {FLAGS.window}, cold "
        f"{FLAGS.cold_steps} steps; flicker 1.00 = as steady as the truth")
  print(f"{'':<56} {'PSNR dB':>8} {'flicker':>8} {'steps/frame':>12} {'s/frame':>8} "
        f"{'frames/s':>9}")
  for name, r in rows.items():
    per_frame = r["seconds"] / r["frames"]
    r["seconds_per_frame"] = per_frame
    print(f"{name:<56} {r['restored_psnr']:8.2f} {r['restored_flicker']:8.2f} "
          f"{r['steps_per_frame']:12.1f} {per_frame:8.3f} {1 / per_frame:9.2f}")
  b = rows["cold"]
  print(f"{'bicubic':<56} {b['bicubic_psnr']:8.2f} {b['bicubic_flicker']:8.2f}")
  if FLAGS.out:
    with open(FLAGS.out, "w") as f:
      json.dump({"settings": {k: FLAGS[k].value for k in ("frames", "cold_steps", "warm_steps",
                                                          "temporal", "warm_lr", "window", "variants")},
                 "rows": rows}, f, indent=1)


if __name__ == "__main__":
  app.run(main)
