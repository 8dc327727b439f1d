"""Where one restoration step's time goes: each part alone, and the solver's compiled chunk.

    PYTHONPATH=. python benchmarks/step_profile.py [--batch 6] [--conv_gradient ours,lax]
        [--generator DIR --arcface DIR --lq_size 8]

Networks: converted checkpoints, or by default the side-by-side problem's (``../shared/
side_by_side``): the 32 px fixture generator and the one-block ArcFace of ``tests/fixtures``,
LQ 8×8 (×4), the authors' objective without the histogram term (120·MSE clamped, cross,
identity on the 100:900 crop, prior), constant noise, clipped output.

Parts, each jitted alone at the batch size, forward and gradient to its input where it is on
the gradient's path (ms per image):

* synthesis: G(W+) -> image, and the gradient to W+;
* degradation: D (the authors' bicubic downsampling) and its gradient to the image;
* identity: the official preprocessing (crop 100:900, bicubic to 112, ImageNet normalisation)
  and ArcFace, and the gradient to the image;
* latent terms: cross, prior (and their gradient);
* Adam: one update of [B, L, D].

Then the solver's compiled chunk (the real program: one image's step vmapped, ``lax.scan`` over
``--steps`` steps), per image-step; what it costs beyond the sum of its parts is the
composition (scan/vmap plumbing, fusion, layouts).

``--conv_gradient lax`` measures JAX's own convolution gradient instead of
``sair_jax.nets.conv``'s (what the project ran before): XLA:CPU runs half of its backward
convolutions in its naive loop emitter inside the scan.
"""

from __future__ import annotations

import os
import tempfile
import time

from absl import app, flags, logging
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from converters import arcface as arcface_converter
from converters import stylegan2 as sg2_converter
from sair_jax.core import degradation, losses, objective, schedules, solver
from sair_jax.nets import arcface, conv, stylegan2

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests",
                        "fixtures")

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch", 6, "images per batch")
flags.DEFINE_list("conv_gradient", ["ours", "lax"], "convolution gradients to measure")
flags.DEFINE_string("generator", "", "converted generator (default: the 32 px fixture)")
flags.DEFINE_string("arcface", "", "converted ArcFace (default: the one-block fixture)")
flags.DEFINE_integer("lq_size", 8, "LQ side")
flags.DEFINE_integer("steps", 10, "steps of the timed compiled chunk")
flags.DEFINE_integer("repeats", 5, "timed calls per part (the best is kept)")


def use_lax_gradient(on: bool) -> None:
  """Routes sair_jax.nets.conv through lax's own gradient (on) or its own (off)."""
  if not hasattr(use_lax_gradient, "ours"):
    use_lax_gradient.ours = (conv._conv_s1, conv._conv_s2)
  if on:
    conv._conv_s1 = lambda x, w, p: lax.conv_general_dilated(
        x, w, (1, 1), p, dimension_numbers=("NHWC", "HWIO", "NHWC"))
    conv._conv_s2 = lambda x, w, p: lax.conv_general_dilated(
        x, w, (2, 2), p, dimension_numbers=("NHWC", "HWIO", "NHWC"))
  else:
    conv._conv_s1, conv._conv_s2 = use_lax_gradient.ours


def best_ms(fn, *args, repeats: int) -> float:
  fn = jax.jit(fn)
  jax.block_until_ready(fn(*args))
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    best = min(best, time.perf_counter() - t0)
  return best * 1e3


def networks(work: str):
  g_dir, a_dir = FLAGS.generator, FLAGS.arcface
  if not g_dir:
    g_dir = os.path.join(work, "g")
    sg2_converter.convert_file(os.path.join(FIXTURES, "sg2_s32.pt"), g_dir)
  if not a_dir:
    a_dir = os.path.join(work, "a")
    arcface_converter.convert_file(os.path.join(FIXTURES, "iresnet_1111.pth"), a_dir)
  return stylegan2.load(g_dir), arcface.load(a_dir)


def profile(g, a, b: int) -> dict:
  factor = g.resolution // FLAGS.lq_size
  weights = (("fidelity", 120.0), ("identity", 0.4), ("prior", 0.001), ("cross", 0.05))
  spec = objective.ObjectiveSpec(g_arch=g.arch, arcface_arch=a.arch, factor=factor,
                                 weights=weights, fidelity_clamp=1e-4, noise="const",
                                 output="clip", identity_variant="official")
  params = {"g_params": g.params, "g_buffers": g.buffers, "arcface": a.params}
  key = jax.random.PRNGKey(0)
  w = jnp.asarray(g.to_wplus(g.mapping(jax.random.normal(key, (b, g.z_dim)))))
  img = jax.random.uniform(key, (b, g.resolution, g.resolution, 3))
  lq = jax.random.uniform(key, (b, FLAGS.lq_size, FLAGS.lq_size, 3))
  emb = jax.random.normal(key, (b, a.arch.embedding_size))
  r = FLAGS.repeats
  ms = {}

  def synth(w):
    return stylegan2.synthesis_fn(params["g_params"], params["g_buffers"], g.arch, w, "const")
  ms["synthesis"] = best_ms(lambda w: jax.value_and_grad(lambda w: jnp.sum(synth(w)))(w), w,
                            repeats=r)
  dparams = spec.degradation
  ms["degradation"] = best_ms(lambda x: jax.value_and_grad(
      lambda x: jnp.sum((degradation.degrade(x, dparams) - lq) ** 2))(x), img, repeats=r)

  def identity(x):
    feats = arcface.apply(params["arcface"], a.arch,
                          arcface.preprocess(x, "official", a.arch.input_size))
    return jnp.sum(losses.identity_loss(emb, feats))
  ms["identity"] = best_ms(lambda x: jax.value_and_grad(identity)(x), img, repeats=r)
  ms["latent terms"] = best_ms(lambda w: jax.value_and_grad(lambda w: jnp.sum(
      losses.cross_loss(w) + losses.latent_prior_loss(w, w)))(w), w, repeats=r)
  opt = schedules.make_optimizer("cosine_ramp", 0.1, 400)
  state = jax.vmap(opt.init)(w)
  ms["Adam"] = best_ms(lambda gr, s, w: jax.vmap(opt.update)(gr, s, w), w, state, w, repeats=r)
  per_image = {k: v / b for k, v in ms.items()}
  parts = sum(per_image.values())

  sol = solver.Solver(spec, params, steps=400, schedule="cosine_ramp", lr=0.1)
  target = sol.shard(objective.make_target(lq, emb, w, hist_size=spec.histogram_size))
  st = sol.init(w, np.arange(b))
  st, _ = sol.run_chunk(st, target, FLAGS.steps)  # compile and warm up
  jax.block_until_ready(st.w)
  best = float("inf")
  for _ in range(max(1, r // 2)):
    t0 = time.perf_counter()
    st, _ = sol.run_chunk(st, target, FLAGS.steps)
    jax.block_until_ready(st.w)
    best = min(best, time.perf_counter() - t0)
  step = best * 1e3 / FLAGS.steps / b
  per_image["composition (step - parts)"] = step - parts
  per_image["step (compiled chunk)"] = step
  return per_image


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  with tempfile.TemporaryDirectory() as work:
    g, a = networks(work)
    columns = {}
    for mode in FLAGS.conv_gradient:
      use_lax_gradient(mode == "lax")
      columns[mode] = profile(g, a, FLAGS.batch)
    use_lax_gradient(False)
  names = list(next(iter(columns.values())))
  print(f"{g.resolution} px generator, ArcFace {a.arch.layers}, LQ {FLAGS.lq_size}, "
        f"batch {FLAGS.batch}, {jax.devices()[0].platform}: ms per image")
  print("| part | " + " | ".join(f"conv gradient: {m}" for m in columns) + " |")
  print("| --- | " + " | ".join("---" for _ in columns) + " |")
  for n in names:
    print(f"| {n} | " + " | ".join(f"{columns[m][n]:.1f}" for m in columns) + " |")
  step = columns[next(iter(columns))]["step (compiled chunk)"]
  print(f"400 steps: {step * 400 / 1e3:.1f} s/image")


if __name__ == "__main__":
  app.run(main)
