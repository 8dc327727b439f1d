"""The StyleGAN2 synthesis network alone: forward, and forward + backward to W+.

    python benchmarks/synthesis.py --batch 8 [--resolution 1024] [--dtype bfloat16] [--remat]
        [--upconv separable,folded] [--iters 10]

Random weights in the full config-f architecture (1024 px, w_dim 512, widths 512..32), as the
SPEC's performance anchors. For each up-layer form it prints XLA's GFLOP and GB accessed per
image (from the compiled programs: the same on any machine compiling for the same backend) and
the compiled memory; on an accelerator also ms per call and the implied seconds per image for a
400-step restoration (synthesis only: no ArcFace, no degradation, no optimiser). On a CPU
timings are skipped unless ``--iters`` > 0 is given explicitly (they are sanity figures).
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from sair_jax.nets import stylegan2
from sair_jax.core.program_stats import GIB, ProgramStats

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch", 4, "images per call")
flags.DEFINE_integer("resolution", 1024, "output side (config-f widths)")
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "compute dtype")
flags.DEFINE_bool("remat", False, "rematerialise each synthesis block in the backward pass")
flags.DEFINE_integer("iters", None, "timed calls after a warm-up (default: 10; 0 on a CPU)")
flags.DEFINE_list("upconv", ["separable", "folded"], "2x up-layer forms to measure")
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
  dev = jax.devices()[0]
  iters = FLAGS.iters if FLAGS.iters is not None else (0 if dev.platform == "cpu" else 10)
  print(f"device: {dev.platform} {dev.device_kind}; {arch.resolution}px config-f; "
        f"batch {FLAGS.batch}; {FLAGS.dtype}; remat={FLAGS.remat}; necessary arithmetic "
        f"{stylegan2.synthesis_conv_flops(arch) / 1e9:.1f} GFLOP forward per image")
  if dev.platform == "cpu" and iters:
    print("NOTE: CPU timings are sanity figures, not performance numbers.")
  print("| upconv | pass | GFLOP/image (XLA) | GB accessed/image | peak GiB (XLA) | ms/call | "
        f"s/image at {FLAGS.steps} steps |\n|---|---|---|---|---|---|---|")
  for upconv in FLAGS.upconv:
    # Parameters are arguments, not closed-over constants, as in the restoration loop.
    def synth(p, b, w, upconv=upconv):
      return stylegan2.synthesis_fn(p, b, arch, w, "const", dtype=dtype, remat=FLAGS.remat,
                                    upconv=upconv)

    passes = (("forward", jax.jit(synth)),
              ("forward+backward to W+", jax.jit(jax.grad(
                  lambda p, b, w: jnp.mean(jnp.square(synth(p, b, w))), argnums=2))))
    for name, fn in passes:
      compiled = fn.lower(params, buffers, ws).compile()
      st = ProgramStats.of(compiled)
      cells = [upconv, name, f"{st.flops / FLAGS.batch / 1e9:.1f}",
               f"{st.bytes_accessed / FLAGS.batch / 1e9:.2f}", f"{st.peak_bytes / GIB:.2f}"]
      if iters:
        t = timed(compiled, params, buffers, ws, iters=iters)
        cells += [f"{t * 1e3:.1f}", f"{t / FLAGS.batch * FLAGS.steps:.2f}"]
      else:
        cells += ["—", "—"]
      print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
  app.run(main)
