"""Which objective restores better: the known-answer problem of tests/test_main.py, per objective.

    python benchmarks/objective_comparison.py [--steps 150] [--lr 0.1] [--rows all|NAME,...]
        [--set loss.identity=0.001,loss.prior=0] [--out DIR]

The problem is the one ``test_restores_a_known_answer_through_main`` builds
(``tests/known_answer.py``): the 32 px fixture generator and the one-block ArcFace (random
weights, so it carries no identity); GT = G(w*) for 3 random faces, rendered with the
generator's constant noise; LQ = the authors' bicubic ×4 of the GT (8×8, no noise); reference
= w* with its fine layers (6:) taken from other faces, given as a latent. Each row restores it
through ``sair_jax.pipeline.restore.restore`` with ``configs/x32.py`` switched to one objective
(``configs/default.py``, ``OBJECTIVES``, as ``--config.objective=NAME`` does), possibly with the
fidelity norm swapped (``+sum``, ``+mean``), the identity term off (``-ID``) or, in the rows
outside 'all', the official objective's generator noise held constant. Every other setting is
the objective's own, at ``--steps`` steps and peak lr ``--lr`` (both objectives' own: 0.1,
constant for ``paper``, the cosine ramp for ``official``), plus any ``--set`` overrides.

It prints a Markdown table of the mean PSNR against the GT (and per face), next to bicubic,
the reference, and w* itself rendered with fresh noise (what the official objective's
per-step noise can reach on a GT rendered with constant noise).
"""

import os
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "tests")]
import known_answer  # noqa: E402  (tests/known_answer.py: the test's problem)
from sair_jax.configs import default, x32  # noqa: E402
from sair_jax.pipeline import restore  # noqa: E402
from sair_jax.core import objective
from sair_jax.io.images import read_image  # noqa: E402
from sair_jax.nets import stylegan2  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("steps", 150, "optimisation steps (the test runs 150)")
flags.DEFINE_float("lr", 0.1, "peak learning rate (both objectives' own: 0.1)")
flags.DEFINE_list("rows", ["all"], "rows to run (ROWS' names), or 'all' (the first 8)")
flags.DEFINE_list("set", [], "overrides for every row, e.g. loss.identity=0.001,loss.prior=0")
flags.DEFINE_string("out", "", "work folder (default: a fresh temporary folder)")

N_FACES = 3
FACTOR = 4

# name -> (objective, config overrides on top of its own settings)
ROWS = {
    "official": ("official", {}),
    "official+sum": ("official", {"loss.fidelity_norm": "sum"}),
    "paper+mean": ("paper", {"loss.fidelity_norm": "mean"}),
    "paper": ("paper", {}),
    "official-ID": ("official", {"loss.identity": 0.0}),
    "official+sum-ID": ("official", {"loss.fidelity_norm": "sum", "loss.identity": 0.0}),
    "paper+mean-ID": ("paper", {"loss.fidelity_norm": "mean", "loss.identity": 0.0}),
    "paper-ID": ("paper", {"loss.identity": 0.0}),
    # not in 'all': the official objective's optimiser switches, one at a time
    "official+const_noise": ("official", {"solver.noise": "const"}),
    "official+const_noise-ID": ("official", {"solver.noise": "const", "loss.identity": 0.0}),
    "official+const_noise+const_lr": ("official", {"solver.noise": "const",
                                                   "solver.schedule": "constant"}),
}
ALL = list(ROWS)[:8]


def psnr(a, b) -> np.ndarray:
  """[N, H, W, C] pairs in [0, 1] -> [N] dB."""
  mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2, axis=(1, 2, 3))
  return -10 * np.log10(mse)


def make_problem(root: str) -> dict:
  """The known-answer inputs of tests/test_main.py under ``root``: paths, GT and baselines."""
  g_dir, _ = known_answer.convert_networks(root)
  gt, ref, lq, w_true = known_answer.write_problem(root, g_dir, N_FACES, FACTOR)
  up = np.clip(np.asarray(jax.image.resize(jnp.asarray(lq), gt.shape, "cubic")), 0, 1)
  g = stylegan2.load(g_dir)
  noisy = g.synthesis(jnp.asarray(w_true), noise="random", rng=jax.random.PRNGKey(0))
  return {"root": root, "gt": gt, "bicubic": psnr(up, gt), "reference": psnr(ref, gt),
          "w* with fresh noise": psnr(objective.to_unit_range(noisy, "minmax"), gt)}


def row_config(problem: dict, name: str, objective_name: str, overrides: dict):
  """configs/x32.py with ``--config.objective=objective_name`` and the row's overrides."""
  c = x32.get_config()
  c.objective, c.recipe = objective_name, "standard"  # each objective's own optimiser
  default.apply_recipe(default.apply_objective(c))
  root = problem["root"]
  c.checkpoints.stylegan2, c.checkpoints.arcface = f"{root}/g", f"{root}/a"
  c.data.lq, c.data.gt, c.data.references = f"{root}/lq", f"{root}/gt", f"{root}/refs"
  c.data.lq_size = problem["gt"].shape[1] // FACTOR
  c.output = os.path.join(root, "runs", name)
  c.solver.steps, c.solver.lr, c.solver.batch_size = FLAGS.steps, FLAGS.lr, 4
  for path, value in {**overrides, **dict(item.split("=", 1) for item in FLAGS.set)}.items():
    group, field = path.split(".")
    kind = type(c[group][field])
    c[group][field] = value.lower() in ("1", "true") if kind is bool and isinstance(value, str) \
        else kind(value)
  return c


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  root = FLAGS.out or tempfile.mkdtemp(prefix="objective_comparison_")
  problem = make_problem(root)
  names = ALL if FLAGS.rows == ["all"] else FLAGS.rows
  settings = ", ".join([f"{FLAGS.steps} steps", f"peak lr {FLAGS.lr}", *FLAGS.set])
  lines = [f"| objective ({settings}) | mean PSNR (dB) | per face |",
           "| --- | --- | --- |"]
  for label in ("bicubic", "reference", "w* with fresh noise"):
    lines.append(f"| {label} | {np.mean(problem[label]):.2f} | "
                 + " ".join(f"{v:.2f}" for v in problem[label]) + " |")
  for name in names:
    objective_name, overrides = ROWS[name]
    config = row_config(problem, name, objective_name, overrides)
    manifest = restore.restore(config)
    if manifest["failures"]:
      raise SystemExit(f"{name}: {manifest['failures']}")
    restored = np.stack([read_image(os.path.join(config.output, "restored", f"face{i}.png"))
                         for i in range(N_FACES)])
    p = psnr(restored, problem["gt"])
    lines.append(f"| {name} | {np.mean(p):.2f} | " + " ".join(f"{v:.2f}" for v in p) + " |")
    print(lines[-1], flush=True)
  print("\n".join(lines))


if __name__ == "__main__":
  app.run(main)
