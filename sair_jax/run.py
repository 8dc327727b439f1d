"""One restoration run over a whole test set: ``run(config)`` does everything ``main`` offers.

Flow: load networks (every missing checkpoint named at once) -> pair inputs -> skip finished
images -> for each batch: load pixels (per-image errors recorded, the batch goes on), resolve
references to W+ (e4e, projection, or given latents; cached), optimise with the solver in
chunks (progress between chunks, face masks refreshed between phases), write every result
atomically, update the manifest.
"""

from __future__ import annotations

import os
import time
import zlib

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from sair_jax import degradation, inputs, inversion, masks, objective, outputs, report, solver
from sair_jax.image_io import ImageIOError, read_image, resize_square
from sair_jax.networks import Networks, load_networks
from sair_jax.outputs import log


class RunError(Exception):
  """A problem with the run as a whole (not one image). One line (or a short list)."""


def image_seed(config, name: str) -> int:
  """Per-image seed from the run seed and the file name (independent of batch composition)."""
  return (zlib.crc32(name.encode()) + 7919 * int(config.solver.seed)) % (2**31)


# ------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------


class Restorer:
  """Holds the networks, the compiled solver and the output folder of one run."""

  def __init__(self, config, nets: Networks, folder: outputs.RunFolder, manifest: dict):
    self.config, self.nets, self.folder, self.manifest = config, nets, folder, manifest
    g = nets.g
    lq_size = int(config.data.lq_size)
    if g.resolution % lq_size:
      raise RunError(f"config.data.lq_size={lq_size} does not divide the generator's "
                     f"resolution {g.resolution}")
    self.lq_size, self.factor = lq_size, g.resolution // lq_size
    self.mesh = solver.batch_mesh()
    self.spec = objective.spec_from_config(config, nets, self.factor)
    self.solver = solver.Solver(self.spec, nets.params(), steps=config.solver.steps,
                                lr=config.solver.lr, schedule=config.solver.schedule,
                                mesh=self.mesh)
    n_dev = self.solver.n_devices
    self.batch = -(-int(config.solver.batch_size) // n_dev) * n_dev
    self.references = inversion.References(config, nets, folder, self.mesh)
    self.detector = None
    self._pool = None
    self.pool_choices = manifest.setdefault("pool_choices", {})
    self.embed = jax.jit(jax.vmap(lambda p, im: objective.embed(self.spec, p, im),
                                  in_axes=(None, 0)))

  # -- per-batch data --------------------------------------------------------------------

  def _load_lq(self, item: inputs.Item) -> np.ndarray:
    img = read_image(item.lq)
    if img.shape[:2] != (self.lq_size, self.lq_size):
      raise ValueError(f"{item.lq}: LQ is {img.shape[1]}x{img.shape[0]}, expected "
                       f"{self.lq_size}x{self.lq_size} (config.data.lq_size)")
    return img

  def _embed_faces(self, faces01) -> np.ndarray:
    """ArcFace features of faces [B, S, S, 3] in [0, 1], resized to the generator's size."""
    res = self.nets.g.resolution
    x = np.stack([resize_square(np.asarray(f), res) for f in faces01])
    return np.asarray(self.embed(self.solver.nets, jnp.asarray(x)))

  def _choose_from_pool(self, loaded) -> None:
    """Pool mode: each LQ's reference is the pool photo ArcFace finds most similar."""
    from sair_jax import reference
    if self._pool is None:
      paths = inputs.list_images(self.config.data.reference_pool)
      model_id = f"{self.config.checkpoints.arcface}|{self.spec.identity_variant}"
      emb = reference.embed_pool(paths, self._embed_faces, model_id=model_id, log=log,
                                 size=self.nets.g.resolution,
                                 cache=os.path.join(self.folder.root, "cache", "pool.npz"))
      self._pool = (paths, emb)
    paths, emb = self._pool
    lq = np.stack([x for _, x in loaded])
    choice = reference.select_references(lq, emb, self._embed_faces,
                                         size=self.nets.g.resolution)
    for (item, _), i, sim in zip(loaded, choice.index[:, 0], choice.similarity[:, 0]):
      item.reference = paths[int(i)]
      self.pool_choices[item.name] = {"reference": paths[int(i)], "similarity": float(sim)}

  def _direction(self, item: inputs.Item) -> tuple[np.ndarray, float]:
    g = self.nets.g
    if item.expression is None or self.nets.directions is None:
      return np.zeros((g.n_latent, g.w_dim), np.float32), 0.0
    d = np.asarray(self.nets.directions.get(item.expression), np.float32)
    if d.shape != (g.n_latent, g.w_dim):
      raise ValueError(f"{self.config.checkpoints.directions}: direction '{item.expression}' "
                       f"has shape {d.shape}, the generator needs ({g.n_latent}, {g.w_dim})")
    return d, 1.0

  def _judge(self, restored01: np.ndarray, reference01: np.ndarray) -> float | None:
    """dlib descriptor distance (the independent judge), None when dlib is not installed."""
    if self.nets.untrained:
      return None
    return report.dlib_judge(restored01, reference01)

  def _masks(self, images01: np.ndarray) -> np.ndarray:
    size = self.spec.histogram_size
    small = np.stack([resize_square(im, size, Image.BILINEAR) for im in images01])
    return masks.face_masks(small, self.detector, value_range=(0.0, 1.0)).masks

  def restore_batch(self, items: list[inputs.Item], index: int, total: int) -> None:
    cfg, failures = self.config, self.manifest["failures"]
    loaded = []
    for item in items:
      try:
        loaded.append((item, self._load_lq(item)))
      except (ImageIOError, ValueError) as e:
        failures[item.name] = str(e)
    if cfg.expression.mode == "infer" and loaded:
      from sair_jax.expression import infer_expression
      inferred = infer_expression(np.stack([lq for _, lq in loaded]), self.nets.expression)
      for (item, _), label in zip(loaded, inferred.labels):
        item.expression = str(label)
    if cfg.data.reference_pool and loaded:
      self._choose_from_pool(loaded)
    refs = self.references.resolve([it for it, _ in loaded], failures)
    rows = []
    for item, lq in loaded:
      if item.name not in refs:
        continue
      try:
        direction, on = self._direction(item)
      except ValueError as e:
        failures[item.name] = str(e)
        continue
      rows.append((item, lq, refs[item.name], direction, on))
    if not rows:
      return
    self._optimise_and_write(rows, index, total)

  def _optimise_and_write(self, rows, index, total):
    cfg, g, sol = self.config, self.nets.g, self.solver
    b = self.batch
    hs = self.spec.histogram_size
    lq = solver.pad_batch(np.stack([r[1] for r in rows]), b)
    ref_img = solver.pad_batch(np.stack([r[2].image for r in rows]), b)
    w_ref = solver.pad_batch(np.stack([r[2].w for r in rows]), b)
    direction = solver.pad_batch(np.stack([r[3] for r in rows]), b)
    on = solver.pad_batch(np.asarray([r[4] for r in rows], np.float32), b)
    lq_hist = np.stack([resize_square(x, hs) for x in lq])
    emb = self.embed(sol.nets, jnp.asarray(ref_img))
    seeds = solver.pad_batch(np.asarray([image_seed(cfg, r[0].name) for r in rows], np.uint32), b)
    target = sol.shard(objective.make_target(lq, emb, w_ref, direction, on, lq_hist, hs))
    state = sol.init(w_ref, seeds)
    keys = jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds))

    def on_phase(step, state, target):
      current = np.asarray(jax.device_get(sol.render(state.w, keys)))
      m = self._masks(current)
      return sol.shard(target.replace(mask=jnp.asarray(m),
                                      histogram_on=jnp.ones_like(target.histogram_on)))

    n = len(rows)
    t_batch = time.perf_counter()

    def progress(step, hist, seconds):
      terms = " ".join(f"{k} {np.mean(v[-1][:n]):.4g}" for k, v in hist.terms.items())
      log(f"[batch {index}/{total}] step {step}/{cfg.solver.steps}  "
          f"loss {np.mean(hist.total[-1][:n]):.4g}  ({terms})  {seconds:.1f}s")

    use_hist = self.spec.weight("histogram") > 0
    state, history, _ = solver.optimise(
        sol, state, target, chunk=cfg.solver.chunk, on_phase=on_phase if use_hist else None,
        phase_start=cfg.loss.histogram_start, phase_every=cfg.loss.mask_every,
        progress=progress)
    w = np.asarray(jax.device_get(state.w))
    bad = np.asarray(jax.device_get(state.bad))
    gammas = np.asarray([cfg.expression.gammas.get(r[0].expression or "", 0.0)
                         if cfg.expression.output_shift and r[4] else 0.0 for r in rows])
    w_out = w.copy()
    w_out[:n] += gammas[:, None, None] * direction[:n]
    restored = np.asarray(jax.device_get(sol.render(jnp.asarray(w_out), keys)))
    emb_out = np.asarray(self.embed(sol.nets, jnp.asarray(restored)))
    seconds = time.perf_counter() - t_batch
    self.manifest["timings"]["batches"].append(
        {"images": n, "batch": b, "seconds": round(seconds, 3),
         "seconds_per_image": round(seconds / n, 3)})
    dparams = self.spec.degradation
    for i, (item, lq_i, ref, _, _) in enumerate(rows):
      if bad[i]:
        first = int(np.argmax(~np.isfinite(history["total"][:, i])))
        self.manifest["failures"][item.name] = (
            f"{item.lq}: loss became non-finite at step {first}; result not written")
        continue
      losses = {k: v[:, i].tolist() for k, v in history.items()}
      final = {k: float(v[-1, i]) for k, v in history.items()}
      e_ref, e_out = np.asarray(emb[i]), emb_out[i]
      sim = float(e_ref @ e_out / (np.linalg.norm(e_ref) * np.linalg.norm(e_out) + 1e-12))
      rep = report.image_report(
          restored01=restored[i], lq01=lq_i,
          degrade_fn=lambda x: degradation.degrade(jnp.asarray(x), dparams),
          identity_sim=sim, judge_distance=self._judge(restored[i], ref.image),
          expression_requested=item.expression, final_losses=final,
          thresholds=dict(cfg.report), name=item.name)
      rep.update(reference_method=ref.method, expression_gamma=float(gammas[i]),
                 untrained_networks=self.nets.untrained,
                 pool_choice=self.pool_choices.get(item.name))
      panels = [resize_square(lq_i, g.resolution, Image.BICUBIC), ref.image, restored[i]]
      if item.gt:
        try:
          panels.append(read_image(item.gt))
        except ImageIOError as e:
          log(f"warning: {e} (GT left out of the strip)")
      self.folder.write_result(
          item.name, restored=restored[i], latent=w_out[i], strip_panels=panels,
          losses={"steps": cfg.solver.steps, "terms": losses, "final": final,
                  "weights": dict(self.spec.weights)},
          report=rep, reference=ref.image)
      self.manifest["finished"].append(item.name)


def _smoke_inputs(config, nets: Networks) -> None:
  """Writes a few synthetic LQ faces and references for the smoke preset (untrained nets)."""
  g = nets.g
  root = os.path.join(config.output, "smoke_inputs")
  lq_dir, ref_dir = os.path.join(root, "lq"), os.path.join(root, "references")
  os.makedirs(lq_dir, exist_ok=True)
  os.makedirs(ref_dir, exist_ok=True)
  n = int(config.get("smoke_images", 3))
  z = jax.random.normal(jax.random.PRNGKey(123), (2 * n, g.z_dim))
  ws = g.to_wplus(g.mapping(z))
  ref_ws = ws[:n].at[:, g.n_latent // 2:].set(ws[n:, g.n_latent // 2:])
  to01 = lambda x: np.asarray(objective.to_unit_range(x, "clip"))
  gt, ref = to01(g.synthesis(ws[:n])), to01(g.synthesis(ref_ws))
  lq = np.asarray(degradation.bicubic_downsample(jnp.asarray(gt),
                                                 g.resolution // int(config.data.lq_size)))
  from sair_jax.image_io import write_image
  for i in range(n):
    write_image(os.path.join(lq_dir, f"face{i}.png"), lq[i])
    write_image(os.path.join(ref_dir, f"face{i}.png"), ref[i])
  config.data.lq, config.data.references = lq_dir, ref_dir


def run(config) -> dict:
  """Restores every image of ``config.data.lq`` into ``config.output``; returns the manifest."""
  t0 = time.perf_counter()
  if config.distributed:
    jax.distributed.initialize()
  nets = load_networks(config)
  if nets.untrained:
    log("SMOKE RUN: the networks are UNTRAINED random networks; the images are meaningless.")
    if not config.data.lq:
      _smoke_inputs(config, nets)
  items, early_failures = inputs.discover(config)
  n_hosts, host = jax.process_count(), jax.process_index()
  if n_hosts > 1:
    items = items[host::n_hosts]
  folder = outputs.RunFolder(config.output,
                             "manifest.json" if n_hosts == 1 else f"manifest-host{host}.json")
  previous = folder.read_manifest()
  manifest = {
      "preset": config.preset, "config": config.to_dict(), "checkpoints": nets.sources,
      "untrained_networks": nets.untrained, "versions": outputs.versions(),
      "devices": [str(d) for d in jax.local_devices()], "host": [host, n_hosts],
      "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
      "finished": [n for n in previous.get("finished", []) if folder.done(n)],
      "failures": {f.name: f.reason for f in early_failures},
      "timings": {"batches": []},
  }
  pending = [it for it in items if not folder.done(it.name)]
  skipped = len(items) - len(pending)
  for it in items:
    if folder.done(it.name) and it.name not in manifest["finished"]:
      manifest["finished"].append(it.name)
  for f in early_failures:
    log(f"skipping {f.name}: {f.reason}")
  restorer = Restorer(config, nets, folder, manifest)
  n_batches = -(-len(pending) // restorer.batch)
  log(f"{len(items)} image(s): {skipped} already restored, {len(pending)} to do in "
      f"{n_batches} batch(es) of {restorer.batch} on {restorer.solver.n_devices} device(s)")
  folder.write_manifest(manifest)
  for k in range(n_batches):
    batch = pending[k * restorer.batch:(k + 1) * restorer.batch]
    restorer.restore_batch(batch, k + 1, n_batches)
    for name in [it.name for it in batch if it.name in manifest["failures"]]:
      log(f"failed {name}: {manifest['failures'][name]}")
    folder.write_manifest(manifest)
  reports = report.read_reports(os.path.join(config.output, "reports"))
  manifest["report_summary"] = report.summarise(list(reports.values()))
  done = [b for b in manifest["timings"]["batches"]]
  images = sum(b["images"] for b in done)
  manifest["timings"]["total_seconds"] = round(time.perf_counter() - t0, 3)
  if images:
    manifest["timings"]["seconds_per_image"] = round(sum(b["seconds"] for b in done) / images, 3)
  folder.write_manifest(manifest)
  log(f"done: {len(manifest['finished'])} restored, {len(manifest['failures'])} failed "
      f"-> {config.output}")
  return manifest
