"""Rosinality-layout StyleGAN2 state dicts with random values, for converter tests."""

import json

import numpy as np

from conftest import fixture

CONFIG_F_KEY = "stylegan2_ffhq_config_f_1024 (rosinality .pt, key g_ema)"


def official_config_f_shapes() -> dict:
  """Every key and shape of the official ``stylegan2-ffhq-config-f.pt`` ``g_ema``."""
  layouts = json.loads(fixture("official_layouts.json").read_text())
  return {k: tuple(v) for k, v in layouts[CONFIG_F_KEY].items()}


def random_state(shapes: dict, seed: int = 0) -> dict:
  """Random float32 tensors of the given shapes; blur kernels get the real [1,3,3,1] filter."""
  rng = np.random.default_rng(seed)
  fir = np.outer([1, 3, 3, 1], [1, 3, 3, 1]).astype(np.float32)
  fir = fir / fir.sum() * 4
  state = {}
  for key, shape in shapes.items():
    if key.endswith(("blur.kernel", "upsample.kernel")):
      state[key] = fir.copy()
    elif key.endswith("noise.weight"):
      state[key] = np.full(shape, 0.1, np.float32)
    else:
      state[key] = rng.standard_normal(shape).astype(np.float32)
  return state
