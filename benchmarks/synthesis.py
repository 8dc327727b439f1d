"""Times the StyleGAN2 synthesis network: forward, and forward + backward to W+.

    python benchmarks/synthesis.py --batch 8 [--resolution 1024] [--dtype bfloat16] [--remat]

Random weights in the full config-f architecture (1024 px, w_dim 512, widths 512..32), as the
SPEC's performance anchors. Reports ms per call and the implied seconds per image for a
400-step restoration (synthesis only: no ArcFace, no degradation, no optimiser).
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from sair_jax.nets import stylegan2

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch", 4, "images per call")
flags.DEFINE_integer("resolution", 1024, "output side (config-f widths)")
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "compute dtype")
flags.DEFINE_bool("remat", False, "rematerialise each synthesis block in the backward pass")
flags.DEFINE_integer("iters", 10, "timed calls (after one warm-up/compile call)")
flags.DEFINE_integer("steps", 400, "restoration steps, for the s/image column")

CONFIG_F_CHANNELS = (512, 512, 512, 512, 512, 256, 128, 64, 32)


def config_f(resolution: int) -> stylegan2.Arch:
  n = int(np.log2(resolution)) - 1
  return stylegan2.Arch(resolution, 512, 8, CONFIG_F_CHANNELS[:n])


def timed(fn, *args, iters: int) -> float:
  """Median seconds per call of a jitted fn, after a compile call."""
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(iters):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return float(np.median(times))


def main(argv):
  del argv
  arch = config_f(FLAGS.resolution)
  params, buffers = stylegan2.init_params(arch, jax.random.PRNGKey(0))
  dtype = jnp.dtype(FLAGS.dtype)
  ws = 0.1 * jax.random.normal(jax.random.PRNGKey(1), (FLAGS.batch, arch.n_latent, arch.w_dim))

  # Parameters are arguments, not closed-over constants, as in the restoration loop.
  def synth(p, b, w):
    return stylegan2.synthesis_fn(p, b, arch, w, "const", dtype=dtype, remat=FLAGS.remat)

  forward = jax.jit(synth)
  backward = jax.jit(jax.grad(lambda p, b, w: jnp.mean(jnp.square(synth(p, b, w))), argnums=2))
  t_fwd = timed(forward, params, buffers, ws, iters=FLAGS.iters)
  t_bwd = timed(backward, params, buffers, ws, iters=FLAGS.iters)
  dev = jax.devices()[0]
  print(f"device: {dev.platform} {dev.device_kind}; {arch.resolution}px config-f; "
        f"batch {FLAGS.batch}; {FLAGS.dtype}; remat={FLAGS.remat}")
  print("| pass | ms/call | ms/image/step | s/image at "
        f"{FLAGS.steps} steps |\n|---|---|---|---|")
  for name, t in (("forward", t_fwd), ("forward+backward to W+", t_bwd)):
    per = t / FLAGS.batch
    print(f"| {name} | {t * 1e3:.1f} | {per * 1e3:.1f} | {per * FLAGS.steps:.2f} |")


if __name__ == "__main__":
  app.run(main)
