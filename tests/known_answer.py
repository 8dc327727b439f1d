"""The known-answer restoration problem of tests/test_main.py, shared with
benchmarks/objective_comparison.py so that both measure the same thing. The problem itself is
built by :mod:`sair_jax.pipeline.known_answer` (also the smoke preset's)."""

import os
import pathlib
from typing import NamedTuple

import numpy as np

from converters import arcface as arcface_converter
from converters import stylegan2 as sg2_converter
from sair_jax.nets import stylegan2
from sair_jax.pipeline import known_answer

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def convert_generator(root) -> str:
  """Converts the 32 px fixture generator into ``root``/g; returns that path."""
  g = os.path.join(root, "g")
  sg2_converter.convert_file(os.path.join(FIXTURES, "sg2_s32.pt"), g)
  return g


def convert_networks(root) -> tuple[str, str]:
  """Converts the 32 px fixture generator and the one-block ArcFace into ``root``/g, /a."""
  a = os.path.join(root, "a")
  arcface_converter.convert_file(os.path.join(FIXTURES, "iresnet_1111.pth"), a)
  return convert_generator(root), a


class Problem(NamedTuple):
  gt: np.ndarray  # [n, S, S, 3] G(w*) in [0, 1] (constant noise, clipped)
  ref: np.ndarray  # [n, S, S, 3] G(reference latent)
  lq: np.ndarray  # [n, S / factor, S / factor, 3]
  w_true: np.ndarray  # [n, L, D] w*


def write_problem(root, generator: str, n: int = 3, factor: int = 4) -> Problem:
  """GT = G(w*); LQ = bicubic ×``factor`` of it; reference latent = w* with its fine layers
  (rows 6 on: 16 and 32 px) replaced. Writes ``root``/lq, /gt (PNG) and /refs (W+ .npy) for
  ``n`` faces named face0, face1, ..."""
  p = known_answer.build_problem(stylegan2.load(generator), n, factor, seed=0, coarse_rows=6)
  known_answer.write_problem(root, p, reference="latent", ref_dir="refs")
  return Problem(p.gt, p.ref, p.lq, p.w_true)


def smoke_inputs(root, n: int = 3, seed: int = 123) -> tuple[pathlib.Path, pathlib.Path]:
  """A test set for the smoke preset's untrained networks: ``root``/lq (LQ at the preset's
  ``data.lq_size``) and ``root``/references (images, projected by the run) for faces
  face0..face{n-1}; returns the two folders."""
  from sair_jax.configs import smoke
  from sair_jax.pipeline.networks import untrained_networks
  config = smoke.get_config()
  g = untrained_networks(config).g
  p = known_answer.build_problem(g, n, g.resolution // int(config.data.lq_size), seed=seed)
  known_answer.write_problem(root, p, reference="image")
  return pathlib.Path(root) / "lq", pathlib.Path(root) / "references"
