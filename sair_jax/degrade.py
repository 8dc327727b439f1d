"""Builds degraded test sets the way the paper does: ``python -m sair_jax.degrade``.

    python -m sair_jax.degrade --src GT_DIR --dst LQ_DIR --preset x32 [--seed 0]
    python -m sair_jax.degrade --src GT_DIR --dst LQ_DIR --preset x8 [--x8_stages random]

For every image ``GT_DIR/NAME.ext`` (top level only) it writes ``LQ_DIR/NAME.png`` and
``LQ_DIR/NAME.json`` (every parameter drawn, so a set can be audited or re-made).

The presets ``x32`` and ``x8``, their stages and the noise scale are described in
:mod:`sair_jax.core.degradation_presets` (``--x8_stages``, ``--noise_domain`` and the other
flags are its arguments).

Randomness is seeded per image from ``--seed`` and the file name, so a re-run (or a run over a
subset) reproduces every image bit for bit. Outputs are written atomically. Bad input stops the
run with a one-line error naming the file and a non-zero exit status.
"""

from __future__ import annotations

import logging
import os
import sys

from absl import flags

from sair_jax import cli
from sair_jax.core.degradation_presets import PRESETS, X8_STAGES, DegradeError, degrade_image
from sair_jax.io import files, images, listing

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defines the command's flags (only when run as a command, so importing never clashes)."""
  flags.DEFINE_string("src", None, "Directory of ground-truth images.")
  flags.DEFINE_string("dst", None, "Output directory for the degraded PNGs and their JSONs.")
  flags.DEFINE_enum("preset", None, PRESETS, "Degradation preset.")
  flags.DEFINE_integer("seed", 0, "Random seed; with the file name it fixes every draw.")
  flags.DEFINE_integer("factor", None,
                       "Override the downsampling factor (x32: 32; x8: side / lq_size).")
  flags.DEFINE_integer("lq_size", 128, "x8: side of the low-quality output.")
  flags.DEFINE_list("x8_stages", ["random"], "x8: 'random' or a subset of blur,noise,jpeg.")
  flags.DEFINE_float("noise_var_min", 0.001, "Lower end of the noise variance range.")
  flags.DEFINE_float("noise_var_max", 0.003, "Upper end of the noise variance range.")
  flags.DEFINE_enum("noise_domain", "unit", ("unit", "signed"),
                    "Scale the variance refers to: images in [0, 1] (unit) or [-1, 1] (signed).")
  flags.mark_flags_as_required(["src", "dst", "preset"])


def _list_sources(src: str) -> list[str]:
  if not os.path.isdir(src):
    raise DegradeError(f"{src}: not a directory")
  found = listing.list_folder(src, images.IMAGE_EXTENSIONS)
  if found.clashes:  # one output name for several sources
    raise DegradeError(found.clash_lines("images")[0])
  if not found.files:
    raise DegradeError(f"{src}: no images found ({', '.join(images.IMAGE_EXTENSIONS)})")
  return [os.path.basename(p) for p in found.paths()]


def _check_options() -> tuple[str, ...]:
  if FLAGS.factor is not None and FLAGS.factor < 1:
    raise DegradeError(f"--factor must be positive, got {FLAGS.factor}")
  if FLAGS.lq_size < 1:
    raise DegradeError(f"--lq_size must be positive, got {FLAGS.lq_size}")
  if not 0.0 <= FLAGS.noise_var_min <= FLAGS.noise_var_max:
    raise DegradeError("need 0 <= --noise_var_min <= --noise_var_max")
  stages = tuple(s.strip() for s in FLAGS.x8_stages if s.strip())
  if stages != ("random",):
    bad = [s for s in stages if s not in X8_STAGES]
    if bad:
      raise DegradeError(f"--x8_stages: unknown stage(s) {', '.join(bad)}; expected 'random' "
                         f"or a subset of {', '.join(X8_STAGES)}")
  if os.path.realpath(FLAGS.src) == os.path.realpath(FLAGS.dst):
    raise DegradeError("--dst must differ from --src")
  return stages


def run() -> int:
  """Degrades every image of --src into --dst; returns the number written."""
  stages = _check_options()
  names = _list_sources(FLAGS.src)
  try:
    os.makedirs(FLAGS.dst, exist_ok=True)
  except OSError as e:
    raise DegradeError(f"{FLAGS.dst}: cannot create ({e.strerror or e})") from None
  for name in names:
    path = os.path.join(FLAGS.src, name)
    x = images.read_image(path)
    try:
      lq, record = degrade_image(
          x, name, preset=FLAGS.preset, seed=FLAGS.seed, factor=FLAGS.factor,
          lq_size=FLAGS.lq_size, x8_stages=stages,
          noise_var=(FLAGS.noise_var_min, FLAGS.noise_var_max), noise_domain=FLAGS.noise_domain)
    except DegradeError as e:
      raise DegradeError(f"{path}: {e}") from None
    stem = os.path.splitext(name)[0]
    out = os.path.join(FLAGS.dst, stem + ".png")
    record["output"] = stem + ".png"
    images.write_image(out, lq)
    files.write_json(os.path.join(FLAGS.dst, stem + ".json"), record)
  return len(names)


def main(argv):
  logging.getLogger("jax").setLevel(logging.WARNING)  # absl's INFO default shows backend probing
  if len(argv) > 1:
    print(f"degrade: error: unexpected arguments: {' '.join(argv[1:])}", file=sys.stderr)
    return 2
  with cli.user_errors(prefix="degrade: "):
    n = run()
  print(f"degrade: wrote {n} image(s) to {FLAGS.dst} (preset {FLAGS.preset}, seed {FLAGS.seed})")
  return 0


if __name__ == "__main__":
  cli.run(define_flags, main)
