"""The output folder of a restoration run: per-image results, the run manifest, resuming.

    OUT/restored/NAME.png      restored face at the generator's resolution (written last:
                               its presence marks NAME as finished)
    OUT/latents/NAME.npy       the W+ code that produced it [n_latent, w_dim]
    OUT/strips/NAME.png        LQ (upsampled) | reference | restored | GT (if given)
    OUT/losses/NAME.json       every loss term at every step, and the final values
    OUT/reports/NAME.json      the per-image restoration report
    OUT/references/NAME.png    the reference used (as the generator sees it)
    OUT/cache/                 inverted references and pool embeddings
    OUT/manifest.json          config, checkpoints, versions, devices, timings, failures

Every file is written to a temporary name and renamed into place, so an interrupted run leaves
only complete files, and a re-run skips every image whose restored PNG exists.
"""

from __future__ import annotations

import io
import json
import os
import platform
import sys
import time
from typing import Any

import numpy as np
from PIL import Image

from sair_jax.io.images import atomic_write, write_image

SUBDIRS = ("restored", "latents", "strips", "losses", "reports", "references", "cache")


def log(msg: str) -> None:
  """Progress and problems of a run, on stderr (stdout stays free for results)."""
  print(msg, file=sys.stderr, flush=True)


def _json_default(obj):
  if isinstance(obj, (np.floating, np.integer)):
    return obj.item()
  if isinstance(obj, np.ndarray):
    return obj.tolist()
  return str(obj)


def write_json(path: str, obj: Any) -> None:
  atomic_write(path, json.dumps(obj, indent=1, default=_json_default, allow_nan=True).encode())


def write_npy(path: str, array: np.ndarray) -> None:
  buf = io.BytesIO()
  np.save(buf, np.asarray(array))
  atomic_write(path, buf.getvalue())


def strip(panels: list[np.ndarray], height: int) -> np.ndarray:
  """Side-by-side panels ([H, W, 3] in [0, 1], any sizes) at a common height, uint8."""
  out = []
  for p in panels:
    img = Image.fromarray(np.round(np.clip(p, 0, 1) * 255).astype(np.uint8))
    resample = Image.NEAREST if img.height < height // 2 else Image.BICUBIC
    out.append(np.asarray(img.resize((round(img.width * height / img.height), height),
                                     resample)))
  return np.concatenate(out, axis=1)


class RunFolder:
  """Paths and writers of one output folder; knows which images are finished."""

  def __init__(self, root: str, manifest_name: str = "manifest.json"):
    self.root = root
    self.manifest_path = os.path.join(root, manifest_name)
    for sub in SUBDIRS:
      os.makedirs(os.path.join(root, sub), exist_ok=True)

  def path(self, sub: str, name: str, ext: str) -> str:
    return os.path.join(self.root, sub, name + ext)

  def done(self, name: str) -> bool:
    return os.path.isfile(self.path("restored", name, ".png"))

  def write_result(self, name: str, *, restored: np.ndarray, latent: np.ndarray,
                   strip_panels: list[np.ndarray], losses: dict, report: dict,
                   reference: np.ndarray | None = None) -> None:
    """Writes every file of one image; the restored PNG last (the 'finished' marker)."""
    write_npy(self.path("latents", name, ".npy"), latent)
    write_json(self.path("losses", name, ".json"), losses)
    write_json(self.path("reports", name, ".json"), report)
    if reference is not None:
      write_image(self.path("references", name, ".png"), reference)
    height = min(256, restored.shape[0])
    write_image(self.path("strips", name, ".png"), strip(strip_panels, height))
    write_image(self.path("restored", name, ".png"), restored)

  def read_manifest(self) -> dict:
    try:
      with open(self.manifest_path) as f:
        return json.load(f)
    except (OSError, ValueError):
      return {}

  def write_manifest(self, manifest: dict) -> None:
    manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    write_json(self.manifest_path, manifest)


def versions() -> dict:
  import flax
  import jax
  import optax

  import sair_jax
  return {"sair_jax": sair_jax.__version__, "jax": jax.__version__, "flax": flax.__version__,
          "optax": optax.__version__, "numpy": np.__version__,
          "python": platform.python_version()}
