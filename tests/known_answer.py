"""The known-answer restoration problem of tests/test_main.py, shared with
benchmarks/objective_comparison.py so that both measure the same thing."""

import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from converters import arcface as arcface_converter
from converters import stylegan2 as sg2_converter
from sair_jax.core import degradation, objective
from sair_jax.io.images import write_image
from sair_jax.nets import stylegan2

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def convert_networks(root) -> tuple[str, str]:
  """Converts the 32 px fixture generator and the one-block ArcFace into ``root``/g, /a."""
  g, a = os.path.join(root, "g"), os.path.join(root, "a")
  sg2_converter.convert_file(os.path.join(FIXTURES, "sg2_s32.pt"), g)
  arcface_converter.convert_file(os.path.join(FIXTURES, "iresnet_1111.pth"), a)
  return g, a


class Problem(NamedTuple):
  gt: np.ndarray  # [n, S, S, 3] G(w*) in [0, 1] (constant noise, clipped)
  ref: np.ndarray  # [n, S, S, 3] G(reference latent)
  lq: np.ndarray  # [n, S / factor, S / factor, 3]
  w_true: np.ndarray  # [n, L, D] w*


def write_problem(root, generator: str, n: int = 3, factor: int = 4) -> Problem:
  """GT = G(w*); LQ = bicubic ×``factor`` of it; reference latent = w* with its fine layers
  replaced. Writes ``root``/lq, /gt (PNG) and /refs (W+ .npy) for ``n`` faces."""
  g = stylegan2.load(generator)
  z = jax.random.normal(jax.random.PRNGKey(0), (2 * n, g.z_dim))
  ws = np.asarray(g.to_wplus(g.mapping(z)))
  w_true, w_ref = ws[:n], ws[:n].copy()
  w_ref[:, 6:] = ws[n:, 6:]  # fine layers (16 and 32 px) from other faces
  gt = np.asarray(objective.to_unit_range(g.synthesis(w_true), "clip"))
  ref = np.asarray(objective.to_unit_range(g.synthesis(w_ref), "clip"))
  lq = np.asarray(degradation.bicubic_downsample(jnp.asarray(gt), factor))
  for d in ("lq", "gt", "refs"):
    os.makedirs(os.path.join(root, d), exist_ok=True)
  for i in range(n):
    write_image(os.path.join(root, "lq", f"face{i}.png"), lq[i])
    write_image(os.path.join(root, "gt", f"face{i}.png"), gt[i])
    np.save(os.path.join(root, "refs", f"face{i}.npy"), w_ref[i])
  return Problem(gt, ref, lq, w_true)
