"""``python -m sair_jax.directions``: import or fit expression directions.

Fitting (``--generator G --classifier C --samples N --out F``): latents are drawn from the
mapping network, synthesised, cropped and classified
(:func:`sair_jax.expression_directions.sampling.collect`, resumable), then one logistic
regression per expression and per W+ row
(:func:`sair_jax.expression_directions.logistic.fit_directions`, also resumable).

Importing (``--from_npy DIR --out F``): the authors' per-expression ``.npy`` files
(:func:`sair_jax.expression_directions.authors_npy.import_npy`).

The output is a directions file (:mod:`sair_jax.expression_directions.file`).
"""

from __future__ import annotations

import glob
import os
from typing import Callable

import numpy as np

from sair_jax import cli
from sair_jax.expression_directions.authors_npy import import_npy
from sair_jax.expression_directions.file import Directions, DirectionsError, save_directions
from sair_jax.expression_directions.logistic import fit_directions
from sair_jax.expression_directions.sampling import collect, generator_sampler
from sair_jax.face.expression import EXPRESSIONS


def run(*, out: str, generator: str | None = None, classifier: str | None = None,
        samples: int = 0, workdir: str | None = None, batch: int = 16, seed: int = 0,
        truncation: float = 1.0, l2: float = 1e-3, iters: int = 20, min_confidence: float = 0.0,
        from_npy: str | None = None, n_latent: int | None = None,
        log: Callable[[str], None] = print) -> Directions:
  """What ``python -m sair_jax.directions`` does (see the module docstring)."""
  if from_npy:
    paths = (sorted(glob.glob(os.path.join(from_npy, "*.npy"))) if os.path.isdir(from_npy)
             else [p for p in from_npy.split(",") if p])
    d = import_npy(paths, n_latent)
  else:
    if not (generator and classifier and samples > 0):
      raise DirectionsError("fitting needs --generator, --classifier and --samples > 0 "
                            "(or --from_npy to import files)")
    from sair_jax.nets import expression as expression_net
    from sair_jax.nets import stylegan2
    G = stylegan2.load(generator)
    C = expression_net.load(classifier)
    sample_fn, label_fn = generator_sampler(G, C, truncation)
    workdir = workdir or os.fspath(out) + ".work"
    info = {"generator": os.path.abspath(generator), "classifier": os.path.abspath(classifier),
            "truncation": truncation}
    latents, probs = collect(workdir, sample_fn, label_fn, samples, batch=batch, seed=seed,
                             run_info=info, log=log)
    d = fit_directions(latents, probs, G.n_latent, min_confidence=min_confidence, l2=l2,
                       iters=iters, state_path=os.path.join(workdir, "fit_state.npz"), log=log,
                       source=f"fitted on {os.path.basename(os.path.normpath(generator))}")
  save_directions(out, d)
  for i, e in enumerate(EXPRESSIONS):
    acc = d.balanced_accuracy[i, 0]
    count = "imported" if d.counts[i] < 0 else f"{d.counts[i]} labelled"
    state = f"{count}, balanced accuracy {acc:.3f}" if d.available[i] and not np.isnan(acc) \
        else (count if d.available[i] else "unavailable")
    log(f"{e:>9}: {state}")
  log(f"wrote {out} ({d.n_latent} x {d.w_dim} per expression)")
  return d


def main(argv):
  del argv
  from absl import flags
  f = flags.FLAGS
  with cli.user_errors(OSError):
    run(out=f.out, generator=f.generator, classifier=f.classifier, samples=f.samples,
        workdir=f.workdir, batch=f.batch, seed=f.seed, truncation=f.truncation, l2=f.l2,
        iters=f.iters, min_confidence=f.min_confidence, from_npy=f.from_npy, n_latent=f.n_latent)


def define_flags() -> None:
  """The command's flags (absl)."""
  from absl import flags
  flags.DEFINE_string("out", None, "output directions file (.npz)")
  flags.DEFINE_string("generator", None, "converted StyleGAN2 checkpoint directory")
  flags.DEFINE_string("classifier", None, "converted expression classifier directory")
  flags.DEFINE_integer("samples", 0, "number of latents to draw and classify")
  flags.DEFINE_string("workdir", None, "resumable work directory (default: OUT.work)")
  flags.DEFINE_integer("batch", 16, "synthesis batch size")
  flags.DEFINE_integer("seed", 0, "PRNG seed of the latent samples")
  flags.DEFINE_float("truncation", 1.0, "truncation psi of the sampled w (1: none)")
  flags.DEFINE_float("l2", 1e-3, "L2 penalty of the logistic regressions")
  flags.DEFINE_integer("iters", 20, "maximum Newton iterations")
  flags.DEFINE_float("min_confidence", 0.0, "leave out samples whose top probability is lower")
  flags.DEFINE_string("from_npy", None, "import: a directory of (or comma-separated) per-"
                                        "expression .npy files, instead of fitting")
  flags.DEFINE_integer("n_latent", None, "import: W+ rows (default: from the files, else 18)")
  flags.mark_flags_as_required(["out"])


if __name__ == "__main__":
  cli.run(define_flags, main)
