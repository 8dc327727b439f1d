"""Official checkpoint layouts filled with random values, for full-size converter tests."""

import json

import numpy as np

from conftest import fixture


def official_layout(prefix: str) -> dict:
  """Key -> shape of the official checkpoint whose entry in official_layouts.json starts so."""
  layouts = json.loads(fixture("official_layouts.json").read_text())
  return next({k: tuple(v) for k, v in layout.items()}
              for name, layout in layouts.items() if name.startswith(prefix))


def random_state_dict(layout: dict, seed: int) -> dict:
  """Random tensors of the layout's shapes: convs/linears ~ N(0, 1/fan_in), BN near identity.

  Full-size layouts hold ~10^8 values: each tensor is a randomly placed window of one shared
  pool of normal samples, which is much faster to make than fresh samples and as good here.
  StyleGAN2's FIR buffers get the real [1, 3, 3, 1] filter (its converter requires them equal).
  """
  rng = np.random.default_rng(seed)
  largest = max(int(np.prod(s)) for s in layout.values())
  pool = rng.standard_normal(2 * largest, dtype=np.float32)
  fir = np.outer([1, 3, 3, 1], [1, 3, 3, 1]).astype(np.float32)
  out = {}
  for key, shape in layout.items():
    shape, n = tuple(shape), int(np.prod(shape))
    normal = pool[(start := rng.integers(0, largest)):start + n].reshape(shape)
    if key.endswith("num_batches_tracked"):
      out[key] = np.array(0, np.int64)
    elif key.endswith(("blur.kernel", "upsample.kernel")):
      out[key] = fir / fir.sum() * 4
    elif key.endswith("running_var"):
      out[key] = 1.0 + 0.5 * np.tanh(normal)
    elif len(shape) > 1:
      out[key] = normal / np.float32(np.sqrt(n // shape[0]))
    else:
      out[key] = np.float32(key.endswith(".weight")) + 0.1 * normal
  return out
