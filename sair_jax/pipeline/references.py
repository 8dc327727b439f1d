"""Reference latents: turning each reference file into the W+ code w_z and the image Z.

A reference is an aligned face image, inverted with the e4e encoder when one is loaded and
otherwise by an optimisation-based projection onto the generator (the restoration solver with a
projection objective); or a W+ code given directly (``.npy`` [L, D], or the authors'
``latents.pt``). Inversions are batched and cached under ``OUT/cache/`` (keyed by the file's
path, size, modification time, the method and the generator resolution); a damaged cache entry
is reported in one line and recomputed. A problem with one reference is an
:class:`~sair_jax.errors.InputError` for the images that use it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os

import jax
import jax.numpy as jnp
import numpy as np

from sair_jax.core import batching, degradation, objective, slots, solver
from sair_jax.errors import ConfigError, InputError
from sair_jax.io import files
from sair_jax.io.images import resize_square
from sair_jax.io.torch_reader import CheckpointFormatError
from sair_jax.pipeline import inputs, outputs
from sair_jax.pipeline.networks import Networks
from sair_jax.pipeline.outputs import log




@dataclasses.dataclass
class Reference:
  w: np.ndarray  # [L, D]
  image: np.ndarray  # [H, W, 3] in [0, 1] at the generator's resolution
  method: str  # 'e4e' | 'projection' | 'latent'


def _latent_of(item: inputs.Item, n_latent: int, w_dim: int) -> np.ndarray:
  """The W+ [L, D] an item's latent reference gives (a file, or an array in memory)."""
  path = item.reference_where
  if isinstance(item.reference, np.ndarray):
    w = item.reference
  elif path.lower().endswith(".npy"):
    try:
      w = files.read_npy(path)
    except files.UnreadableFileError as e:
      raise InputError(str(e)) from None
  else:
    from sair_jax.io.torch_reader import load_torch_file
    try:
      obj = load_torch_file(path)
    except CheckpointFormatError as e:
      raise InputError(str(e)) from None
    if isinstance(obj, dict):  # the authors' latents.pt: one W+ per name, or a single one
      key = next((k for k in (item.name, inputs.stem(path)) if k in obj), None)
      obj = obj[key] if key is not None else next(
          (v for v in obj.values() if isinstance(v, np.ndarray)), None)
    if not isinstance(obj, np.ndarray):
      raise InputError(f"{path}: no W+ tensor found")
    w = obj
  w = np.asarray(w, np.float32)
  if w.ndim == 3 and w.shape[0] == 1:
    w = w[0]
  if w.ndim == 1:
    w = np.repeat(w[None], n_latent, axis=0)
  if w.shape != (n_latent, w_dim):
    raise InputError(f"{path}: W+ has shape {w.shape}, the generator needs ({n_latent}, {w_dim})")
  return w


class References:
  """Turns reference files into (W+, image), batching inversions and caching them on disk."""

  def __init__(self, config, nets: Networks, folder: outputs.RunFolder,
               mesh: jax.sharding.Mesh):
    self.config, self.nets, self.folder, self.mesh = config, nets, folder, mesh
    self.res = nets.g.resolution
    self._render_fn = None
    self._projectors: dict = {}  # factor -> (projection solver, jitted embedding)

  def _cache_path(self, item: inputs.Item, img: np.ndarray, method: str) -> str:
    """A file's inversion is keyed by its path, size and modification time; pixels held in
    memory by a digest of their values (a rerun of a flow finds its inversions again)."""
    if isinstance(item.reference, str):
      path = item.reference
      st = os.stat(path)
      key = f"{os.path.abspath(path)}|{st.st_mtime_ns}|{st.st_size}"
    else:
      path = item.reference_origin or item.name
      key = inputs.pixel_key(img)
    digest = hashlib.sha1(f"{key}|{method}|{self.res}".encode()).hexdigest()[:12]
    return os.path.join(self.folder.root, "cache", f"ref-{inputs.stem(path)}-{digest}.npy")

  def _cached(self, item: inputs.Item, img: np.ndarray,
              method: str) -> tuple[str, np.ndarray | None]:
    """The cache file of a reference and its W+ (None when absent or damaged)."""
    try:
      cache = self._cache_path(item, img, method)
    except OSError as e:
      raise InputError(f"{item.reference_where}: cannot read the reference "
                       f"({e.strerror or e})") from None
    if not os.path.isfile(cache):
      return cache, None
    try:
      w = files.read_npy(cache)
      if w.shape == (self.nets.g.n_latent, self.nets.g.w_dim):
        return cache, w
      reason = f"holds shape {w.shape}"
    except files.UnreadableFileError as e:
      reason = str(e).split(": ", 1)[-1]
    log(f"{cache}: damaged cache entry ({reason}); recomputing it")
    return cache, None

  def resolve(self, items: list[inputs.Item]
              ) -> tuple[dict[str, Reference], list[inputs.Failure]]:
    """The reference of every item, and a failure for each item whose reference is unusable."""
    g = self.nets.g
    method = "e4e" if self.nets.e4e is not None else "projection"
    out: dict[str, Reference] = {}
    failures: list[inputs.Failure] = []
    to_invert: list[tuple[inputs.Item, np.ndarray, str]] = []
    for item in items:
      try:
        if item.reference_is_latent:
          w = _latent_of(item, g.n_latent, g.w_dim)
          img = np.asarray(jax.device_get(self._render(w[None])))[0]
          out[item.name] = Reference(w, img, "latent")
          continue
        img = inputs.load_pixels(item.reference)
        if img.ndim != 3 or img.shape[0] != img.shape[1]:
          raise InputError(f"{item.reference_where}: reference is {img.shape[1]}x"
                           f"{img.shape[0]}, expected a square aligned face "
                           "(python -m sair_jax.align)")
        img = resize_square(img, self.res)
        cache, w = self._cached(item, img, method)
        if w is not None:
          out[item.name] = Reference(w, img, method)
        else:
          to_invert.append((item, img, cache))
      except InputError as e:
        failures.append(inputs.Failure(item.name, str(e)))
    if to_invert:  # each reference once, however many images share it (one cache entry)
      users: dict[str, tuple[np.ndarray, list[inputs.Item]]] = {}
      for item, img, cache in to_invert:
        users.setdefault(cache, (img, []))[1].append(item)
      ws = self._invert(np.stack([img for img, _ in users.values()]), method)
      for (cache, (img, items_of)), w in zip(users.items(), ws):
        files.write_npy(cache, w)
        for item in items_of:
          out[item.name] = Reference(w, img, method)
    return out, failures

  def _render(self, w):
    """G(w) in [0, 1] of one W+ [1, L, D] -> [1, H, W, 3], compiled once per run (run eagerly,
    every reference dispatched and compiled the generator's ops anew: seconds each)."""
    if self._render_fn is None:
      spec = self._spec()
      self._render_fn = jax.jit(lambda params, w: objective.render(spec, params, w, None))
    return self._render_fn(self.nets.params(), jnp.asarray(w[0]))[None]

  def _spec(self):
    return objective.projection_spec(self.config, self.nets, 1)

  def _invert(self, images: np.ndarray, method: str) -> np.ndarray:
    g = self.nets.g
    if method == "e4e":
      w = np.asarray(self.nets.e4e.encode_faces(jnp.asarray(images)))
      if w.shape[1:] != (g.n_latent, g.w_dim):
        raise ConfigError(f"{self.config.checkpoints.e4e}: e4e gives W+ {w.shape[1:]}, the "
                          f"generator needs ({g.n_latent}, {g.w_dim})")
      return w
    return self._project(images)

  def _projector(self, factor: int):
    """The projection's solver and its jitted reference embedding, built once per run (every
    batch of references reuses their compiled programs)."""
    if factor not in self._projectors:
      cfg = self.config
      spec = objective.projection_spec(cfg, self.nets, factor)
      sol = solver.Solver(spec, self.nets.params(), steps=cfg.projection.steps,
                          lr=cfg.projection.lr, mesh=self.mesh)
      self._projectors[factor] = (sol, objective.batch_embedder(spec))
    return self._projectors[factor]

  def _project(self, images: np.ndarray) -> np.ndarray:
    """Optimisation-based inversion (no e4e): fit G(w) to the reference from w_avg."""
    cfg, g = self.config, self.nets.g
    size = min(cfg.projection.size, self.res)
    factor = self.res // size
    log(f"projecting {len(images)} reference(s) onto the generator "
        f"({cfg.projection.steps} steps; convert e4e for a faster, better start)")
    sol, embed = self._projector(factor)
    b = len(images)
    padded = batching.round_up(b, sol.n_devices)
    x = jnp.asarray(batching.pad_batch(images, padded))
    lq = degradation.bicubic_downsample(x, factor) if factor > 1 else x
    emb = embed(sol.params, x)
    w0 = np.broadcast_to(np.asarray(g.w_avg), (b, g.n_latent, g.w_dim))
    target = jax.tree_util.tree_map(
        np.asarray, objective.make_target(lq[:b], emb[:b], w0, None, None, None, 8))
    jobs = [slots.Job(i, w0[i], jax.tree_util.tree_map(lambda a, i=i: a[i], target), i)
            for i in range(b)]
    done = slots.run_all(sol, jobs, padded, chunk=int(cfg.solver.chunk))
    return np.stack([f.w for f in done])
