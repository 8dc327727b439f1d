"""Restored PSNR against steps on known-answer problems of several kinds, for optimisation recipes.

    PYTHONPATH=. python benchmarks/convergence.py [--kinds s32_x4_near,...] \
        [--candidates official,fast,...] [--faces 4] [--out benchmarks/convergence.json]

A known-answer problem (``sair_jax.pipeline.known_answer.build_problem``): ground truth
GT = G(w*) (constant noise), LQ = the authors' bicubic downsampling of GT (optionally plus
Gaussian noise with variance drawn from [0.001, 0.003] on the [0, 1] scale, the ×32 protocol),
and a reference w_z = w* with its rows from ``coarse_rows`` on taken from other latents: *near*
shares half the rows with w*, *far* a quarter. Kinds cross the generator (the 32 px fixture
generator ``tests/fixtures/sg2_s32.pt``, and a random 64 px one), the factor (4, 8), noise and
the reference's distance. GT and LQ are quantised to 8 bits, as files would be.

The objective is the authors' (``official``: 120·MSE clamped, 0.05 cross, 0.4 identity on the
100:900 crop with the one-block ArcFace ``tests/fixtures/iresnet_1111.pth``, 0.001 prior) with
the generator noise held constant and the output clipped, as the GT was rendered (with the
objective's fresh noise even w* scores far below the rest; see benchmarks/objective_comparison.py),
and without the histogram and expression terms: the protocol of ``../shared/side_by_side``.

Each candidate is a set of ``config.solver`` fields (``configs/default.py``: steps, lr,
schedule, betas, start, per-row lr scales, coarse rows first, early stopping); PSNR (8-bit
rounded restored image against GT, mean over the faces) is measured every ``--every`` steps.
With early stopping the images run through ``sair_jax.core.slots`` and the table reports the
mean steps they took. Results are kept in ``--out`` (JSON; default the ``convergence.json``
beside this script) and a rerun skips what is there.
"""

from __future__ import annotations

import json
import os
import tempfile
import time

from absl import app, flags, logging
import jax
import jax.numpy as jnp
import numpy as np

from sair_jax.configs import default
from converters import arcface as arcface_converter
from converters import stylegan2 as sg2_converter
from sair_jax.core import degradation, objective, schedules, slots, solver
from sair_jax.metrics import image as image_metrics
from sair_jax.nets import arcface, stylegan2
from sair_jax.pipeline import known_answer

KEPT_RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "convergence.json")
FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests",
                        "fixtures")

# name: (generator, factor, noisy LQ, reference shares this fraction of w*'s rows)
KINDS = {
    "s32_x4_near": ("s32", 4, False, 1 / 2),
    "s32_x4_noisy_far": ("s32", 4, True, 1 / 4),
    "s32_x8_far": ("s32", 8, False, 1 / 4),
    "s64_x8_near": ("s64", 8, False, 1 / 2),
    "s64_x8_noisy_near": ("s64", 8, True, 1 / 2),
    "s64_x4_far": ("s64", 4, False, 1 / 4),
}

FAST = {path.split(".")[1]: v for path, v in default.RECIPES["fast"].items()
        if path.split(".")[1] not in ("chunk", "stop_tol")}

FAST1 = dict(steps=100, lr=0.03, schedule="constant", start="reference_coarse")

# name: config.solver fields (the rest as the official objective sets them: cosine ramp to lr
# 0.1, Adam 0.9/0.999, start at w_z).
CANDIDATES = {
    "official": dict(steps=400),
    "official_100": dict(steps=100),
    "constant_0.03": dict(steps=100, schedule="constant", lr=0.03),
    "ramp_0.05": dict(steps=100, lr=0.05),
    "betas_0.7": dict(steps=100, schedule="constant", lr=0.03, betas=(0.7, 0.999)),
    "rows_0.5_1.5": dict(steps=100, schedule="constant", lr=0.03, coarse_lr_scale=0.5,
                         fine_lr_scale=1.5),
    "coarse_first_20": dict(steps=100, schedule="constant", lr=0.03, fine_rows_start=20),
    "start_truncated": dict(steps=100, schedule="constant", lr=0.03, start="truncated"),
    # the first 'fast' recipe (2026-11-29): lr 0.03 constant, Adam 0.9/0.999, coarse rows of w_z
    # and w_avg's fine rows as the start, 100 steps; fast1_*: variants of it
    "fast1": FAST1,
    "fast1_stop": dict(FAST1, stop_tol=0.002, stop_min_steps=50, stop_window=10),
    "fast1_lr0.05": dict(FAST1, lr=0.05),
    "fast1_fine2": dict(FAST1, fine_lr_scale=2.0),
    "fast1_betas0.7": dict(FAST1, betas=(0.7, 0.999)),
    "fast1_lr0.05_rows": dict(FAST1, lr=0.05, coarse_lr_scale=0.5, fine_lr_scale=1.5),
    "fast1_decay0.05": dict(FAST1, lr=0.05, schedule="cosine_decay"),
    "fast1_decay0.08": dict(FAST1, lr=0.08, schedule="cosine_decay"),
    "decay0.08_ref": dict(FAST1, lr=0.08, schedule="cosine_decay", start="reference"),
    "fast1_lr0.1": dict(FAST1, lr=0.1),
    "fast1_lr0.2": dict(FAST1, lr=0.2),
    "fast1_ramp0.2": dict(FAST1, lr=0.2, schedule="cosine_ramp"),
    "fast1_ramp0.05": dict(FAST1, lr=0.05, schedule="cosine_ramp"),
    "fast1_ramp0.08": dict(FAST1, lr=0.08, schedule="cosine_ramp"),
    "fast1_avg_start": dict(FAST1, start="truncated", start_psi=0.0),
    "fast1_psi0.5": dict(FAST1, start="truncated", start_psi=0.5),
    "fast1_150": dict(FAST1, steps=150),
    "fast1_200": dict(FAST1, steps=200),
    # the recipe 'fast' (configs/default.py RECIPES): fast1's lr held to step 70, then a cosine
    # to 0 (cosine_ramp, no warm-up, rampdown 0.3), Adam's β2 0.8; fast_*: variants of it
    "fast": FAST,
    "fast_b2_0.999": dict(FAST, betas=(0.9, 0.999)),
    "fast_held": dict(FAST, rampdown=0.0),
    "fast_b2_0.9_rd0.4": dict(FAST, betas=(0.9, 0.9), rampdown=0.4),
    "fast_lr0.05_b2_0.9_rd0.4": dict(FAST, lr=0.05, betas=(0.9, 0.9), rampdown=0.4),
    "fast_lr0.05_rd0.4": dict(FAST, lr=0.05, rampdown=0.4),
    "fast_lr0.05_b2_0.9_rd0.5": dict(FAST, lr=0.05, betas=(0.9, 0.9), rampdown=0.5),
    "fast_lr0.04_rd0.4": dict(FAST, lr=0.04, rampdown=0.4),
    "fast_150": dict(FAST, steps=150),
    "fast_200": dict(FAST, steps=200),
    "official_stop": dict(steps=400, stop_tol=0.002, stop_min_steps=100, stop_window=25),
}

FLAGS = flags.FLAGS
flags.DEFINE_list("kinds", list(KINDS), "problem kinds")
flags.DEFINE_list("candidates", list(CANDIDATES), "recipes (config.solver fields)")
flags.DEFINE_integer("faces", 4, "faces per problem")
flags.DEFINE_integer("every", 25, "measure PSNR every this many steps")
flags.DEFINE_string("out", KEPT_RESULTS, "results (JSON; a rerun skips what is there)")


def generator(name: str, workdir: str) -> stylegan2.Generator:
  """The 32 px fixture generator (converted), or a random 64 px one (seeded)."""
  if name == "s32":
    dst = os.path.join(workdir, "g32")
    if not os.path.isdir(dst):
      sg2_converter.convert_file(os.path.join(FIXTURES, "sg2_s32.pt"), dst)
    return stylegan2.load(dst)
  arch = stylegan2.Arch(64, 256, 4, (64, 64, 48, 32, 16))
  params, buffers = stylegan2.init_params(arch, jax.random.PRNGKey(64))
  z = jax.random.normal(jax.random.PRNGKey(1), (10_000, arch.z_dim))
  w_avg = jnp.mean(stylegan2.mapping_fn(params, arch, z), axis=0)
  return stylegan2.Generator(params, buffers, arch, w_avg)


def quantise(x) -> np.ndarray:
  return np.round(np.clip(np.asarray(x, np.float64), 0.0, 1.0) * 255.0).astype(np.float32) / 255


def problem(g, kind: str, n: int):
  """(GT, LQ, w_z, reference image) of one kind."""
  _, factor, noisy, share = KINDS[kind]
  p = known_answer.build_problem(g, n, factor, seed=7, coarse_rows=max(1, int(g.n_latent * share)))
  lq = jnp.asarray(p.lq)
  if noisy:
    key = jax.random.PRNGKey(11)
    sigma = degradation.sample_noise_sigma(key, n, (0.001, 0.003))
    lq = degradation.add_gaussian_noise(lq, jax.random.fold_in(key, 1), sigma)
  return quantise(p.gt), quantise(lq), np.asarray(p.w_ref), p.ref


def spec_for(g, a, factor: int) -> objective.ObjectiveSpec:
  weights = (("fidelity", 120.0), ("identity", 0.4), ("prior", 0.001), ("cross", 0.05))
  return objective.ObjectiveSpec(g_arch=g.arch, arcface_arch=a.arch, factor=factor,
                                 weights=weights, fidelity_clamp=1e-4, noise="const",
                                 output="clip", identity_variant="official")


def candidate_config(name: str):
  """The authors' config (``official``) with candidate ``name``'s ``config.solver`` fields."""
  config = default.get_config("official")
  for k, v in CANDIDATES[name].items():
    config.solver[k] = v
  return config


def run_candidate(g, a, kind: str, name: str, data) -> dict:
  gt, lq, w_ref, ref = data
  fields = CANDIDATES[name]
  config = candidate_config(name)
  spec = spec_for(g, a, KINDS[kind][1])
  params = {"g_params": g.params, "g_buffers": g.buffers, "arcface": a.params}
  steps = int(config.solver.steps)
  sol = solver.Solver(spec, params, steps=steps,
                      optimizer=schedules.optimizer_from_config(config, g.n_latent))
  emb = jax.vmap(lambda im: objective.embed(spec, sol.params, im))(jnp.asarray(ref))
  w_init = schedules.start_from_config(config, w_ref, np.asarray(g.w_avg))
  target = objective.make_target(lq, emb, w_ref, hist_size=spec.histogram_size)
  per_face = lambda w: [float(x) for x in np.asarray(image_metrics.psnr(  # noqa: E731
      jnp.asarray(quantise(sol.render(jnp.asarray(w)))), jnp.asarray(gt)))]
  t0 = time.perf_counter()
  n = len(gt)
  if float(config.solver.stop_tol) > 0:
    rule = slots.StopRule(float(config.solver.stop_tol), int(config.solver.stop_min_steps),
                          int(config.solver.stop_window))
    target = jax.tree_util.tree_map(np.asarray, target)
    jobs = [slots.Job(i, w_init[i], jax.tree_util.tree_map(lambda x, i=i: x[i], target), i)
            for i in range(n)]
    done = slots.run_all(sol, jobs, n, chunk=FLAGS.every, stop=rule)
    steps_taken = [f.steps for f in done]
    faces = per_face(np.stack([f.w for f in done]))
    curve = [(steps, float(np.mean(faces)))]
  else:
    state = sol.init(jnp.asarray(w_init), np.arange(n))
    target = sol.shard(target)
    curve, done_steps = [], 0
    while done_steps < steps:
      k = min(FLAGS.every, steps - done_steps)
      state, _ = sol.run_chunk(state, target, k)
      done_steps += k
      faces = per_face(state.w)
      curve.append((done_steps, float(np.mean(faces))))
    steps_taken = [steps] * n
  return {"kind": kind, "candidate": name, "fields": {k: list(v) if isinstance(v, tuple) else v
                                                      for k, v in fields.items()},
          "faces": n, "psnr": curve[-1][1], "per_face": faces, "curve": curve,
          "mean_steps": float(np.mean(steps_taken)),
          "image_steps": int(np.sum(steps_taken)), "seconds": time.perf_counter() - t0}


def baselines(gt, lq, ref) -> dict:
  s = known_answer.known_answer_psnr(ref, gt, lq, ref)
  return {"bicubic": s["bicubic_psnr"], "reference": s["reference_psnr"]}


def paired_gap(run: dict, base: dict) -> dict | None:
  """``run`` − ``base`` in PSNR over the same faces: mean, its standard error (sample standard
  deviation of the per-face differences / sqrt(n)), the worst face and n; None when either
  record lacks ``per_face`` or they hold different numbers of faces."""
  a, b = run.get("per_face"), base.get("per_face")
  if not a or not b or len(a) != len(b):
    return None
  d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
  se = float(np.std(d, ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
  return {"mean": float(np.mean(d)), "se": se, "worst": float(np.min(d)), "faces": len(d)}


def gaps(results: list[dict]) -> list[str]:
  """One line per (kind, candidate) with per-face results beside official's: the paired gap."""
  by = {(r["kind"], r["candidate"]): r for r in results}
  lines = []
  for k in KINDS:
    base = by.get((k, "official"))
    for name in CANDIDATES:
      r = by.get((k, name))
      if name == "official" or r is None or base is None:
        continue
      g = paired_gap(r, base)
      if g is not None:
        lines.append(f"{name} on {k}: {g['mean']:+.2f} ± {g['se']:.2f} dB (standard error, "
                     f"{g['faces']} faces; worst face {g['worst']:+.2f})")
  return lines


def table(results: list[dict]) -> str:
  kinds = [k for k in KINDS if any(r["kind"] == k for r in results)]
  names = [c for c in CANDIDATES if any(r["candidate"] == c for r in results)]
  by = {(r["kind"], r["candidate"]): r for r in results}
  lines = ["| recipe | steps | " + " | ".join(kinds) + " | worst Δ vs official |",
           "| --- | --- | " + " | ".join("---" for _ in kinds) + " | --- |"]
  for name in names:
    cells, deltas, steps = [], [], []
    for k in kinds:
      r, base = by.get((k, name)), by.get((k, "official"))
      if r is None:
        cells.append("")
        continue
      steps.append(r["mean_steps"])
      d = None if base is None else r["psnr"] - base["psnr"]
      deltas.append(d)
      cells.append(f"{r['psnr']:.2f}" + ("" if d is None or name == "official" else f" ({d:+.2f})"))
    worst = min((d for d in deltas if d is not None), default=None)
    mean_steps = f"{np.mean(steps):.0f}" if steps else ""
    lines.append(f"| {name} | {mean_steps} | " + " | ".join(cells) + " | "
                 + ("" if worst is None or name == "official" else f"{worst:+.2f}") + " |")
  return "\n".join(lines)


def check_faces(runs: list[dict], faces: int, out: str) -> None:
  """Raises app.UsageError (one line naming ``out``) when ``runs`` were measured on another
  number of faces than ``faces``: a table mixes only runs over the same faces."""
  other = sorted({r.get("faces") for r in runs} - {faces}, key=str)
  if other:
    raise app.UsageError(f"{out}: holds runs over {', '.join(map(str, other))} faces, not "
                         f"--faces={faces}; give another --out")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  results = json.load(open(FLAGS.out)) if os.path.exists(FLAGS.out) else {"runs": [],
                                                                          "baselines": {}}
  check_faces(results["runs"], FLAGS.faces, FLAGS.out)
  done = {(r["kind"], r["candidate"]) for r in results["runs"]}
  with tempfile.TemporaryDirectory() as work:
    a_dir = os.path.join(work, "a")
    arcface_converter.convert_file(os.path.join(FIXTURES, "iresnet_1111.pth"), a_dir)
    a = arcface.load(a_dir)
    gens = {}
    for kind in FLAGS.kinds:
      gname = KINDS[kind][0]
      if gname not in gens:
        gens[gname] = generator(gname, work)
      g = gens[gname]
      data = problem(g, kind, FLAGS.faces)
      results["baselines"][kind] = baselines(data[0], data[1], data[3])
      for name in FLAGS.candidates:
        if (kind, name) in done:
          continue
        r = run_candidate(g, a, kind, name, data)
        print(f"{kind:20s} {name:20s} {r['psnr']:.2f} dB  {r['mean_steps']:.0f} steps  "
              f"{r['seconds']:.0f}s  curve " + " ".join(f"{s}:{p:.2f}" for s, p in r["curve"]),
              flush=True)
        results["runs"].append(r)
        with open(FLAGS.out + ".tmp", "w") as f:
          json.dump(results, f, indent=1)
        os.replace(FLAGS.out + ".tmp", FLAGS.out)
  print(table(results["runs"]))
  for line in gaps(results["runs"]):
    print(line)
  print("baselines (bicubic / reference PSNR): " + ", ".join(
      f"{k} {v['bicubic']:.2f}/{v['reference']:.2f}" for k, v in results["baselines"].items()))


if __name__ == "__main__":
  app.run(main)
