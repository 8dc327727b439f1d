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

Every file is written to a temporary name and renamed into place (:mod:`sair_jax.io.files`), so
an interrupted run leaves only complete files (and stray temporaries, deleted when the next run
starts), and a re-run skips every image whose restored PNG exists. One run at a time uses a
folder: :meth:`RunFolder.lock` refuses a second one in one line.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import platform
import sys
import time

import numpy as np
from PIL import Image

from sair_jax.errors import UserError
from sair_jax.io import files
from sair_jax.io.images import write_image
from sair_jax.pipeline import report as report_lib

SUBDIRS = ("restored", "latents", "strips", "losses", "reports", "references", "cache")


def log(msg: str) -> None:
  """Progress and problems of a run, on stderr (stdout stays free for results)."""
  print(msg, file=sys.stderr, flush=True)


class FolderInUse(UserError):
  """Another run is using the output folder."""


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
    self.lock_path = os.path.join(root, "." + os.path.splitext(manifest_name)[0] + ".lock")
    try:
      for sub in SUBDIRS:
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    except OSError as e:
      raise files.OutputError(f"{root}: cannot create the output folder "
                              f"({e.strerror or e})") from None

  @contextlib.contextmanager
  def lock(self):
    """Holds the folder for one run; a second run on it fails at once with one line.

    An advisory ``flock`` on a lock file: the operating system releases it when the process
    ends, however it ends (a killed run never leaves the folder locked).
    """
    fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except OSError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        raise FolderInUse(f"{self.root}: another run is using this folder (pid {holder}); "
                          "wait for it or choose another config.output") from None
      os.ftruncate(fd, 0)
      os.pwrite(fd, str(os.getpid()).encode(), 0)
      yield self
    finally:
      os.close(fd)  # releases the lock

  def remove_temps(self) -> int:
    """Deletes temporaries an interrupted run left behind; returns how many."""
    return files.remove_temps(self.root)

  def path(self, sub: str, name: str, ext: str) -> str:
    return os.path.join(self.root, sub, name + ext)

  def done(self, name: str) -> bool:
    return os.path.isfile(self.path("restored", name, ".png"))

  def write_result(self, name: str, *, restored: np.ndarray, latent: np.ndarray,
                   strip_panels: list[np.ndarray], losses: dict, report: dict,
                   reference: np.ndarray | None = None) -> None:
    """Writes every file of one image; the restored PNG last (the 'finished' marker)."""
    files.write_npy(self.path("latents", name, ".npy"), latent)
    files.write_json(self.path("losses", name, ".json"), losses)
    report_lib.write_report(self.path("reports", name, ".json"), report)
    if reference is not None:
      write_image(self.path("references", name, ".png"), reference)
    height = min(256, restored.shape[0])
    write_image(self.path("strips", name, ".png"), strip(strip_panels, height))
    write_image(self.path("restored", name, ".png"), restored)

  def read_manifest(self) -> dict:
    """The previous run's manifest; {} when there is none, or when it is damaged (said in one
    line: the finished images are known from ``restored/`` anyway, and the manifest is
    rebuilt)."""
    if not os.path.exists(self.manifest_path):
      return {}
    try:
      return files.read_json(self.manifest_path)
    except files.UnreadableFileError as e:
      log(f"{e}; rebuilding it from the restored images")
      return {}

  def write_manifest(self, manifest: dict) -> None:
    manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    files.write_json(self.manifest_path, manifest)


def versions() -> dict:
  import flax
  import jax
  import optax

  import sair_jax
  return {"sair_jax": sair_jax.__version__, "jax": jax.__version__, "flax": flax.__version__,
          "optax": optax.__version__, "numpy": np.__version__,
          "python": platform.python_version()}
