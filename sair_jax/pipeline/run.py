"""One restoration run over a whole test set: ``run(config)`` does everything ``main`` offers.

Flow: load networks (every missing checkpoint named at once) -> pair inputs -> skip finished
images -> for each batch: load pixels (per-image errors recorded, the batch goes on), resolve
references to W+ (e4e, projection, or given latents; cached), optimise with the solver in
chunks (progress between chunks, face masks refreshed between phases), write every result
atomically, update the manifest.
"""

from __future__ import annotations

import dataclasses
import os
import time
import zlib

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from sair_jax.core import batching, degradation, objective, solver
from sair_jax.face import masks
from sair_jax.pipeline import inputs, references, outputs, report
from sair_jax.io.images import ImageIOError, read_image, resize_square
from sair_jax.pipeline.networks import Networks, load_networks
from sair_jax.pipeline.outputs import log


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
    self.n_devices = self.mesh.devices.size
    self.spec = objective.spec_from_config(config, nets, self.factor)
    self._solvers = {}  # remat -> Solver (the auto batch planner may compile both)
    self.batch = batching.round_up(max(1, int(config.solver.batch_size)), self.n_devices)
    self.step_flops = {}  # batch size -> XLA FLOPs of one step of the whole batch
    self.references = references.References(config, nets, folder, self.mesh)
    self.detector = None
    self._pool = None
    self.pool_choices = manifest.setdefault("pool_choices", {})
    self.embed = jax.jit(jax.vmap(lambda p, im: objective.embed(self.spec, p, im),
                                  in_axes=(None, 0)))

  # -- batch sizes -----------------------------------------------------------------------

  @property
  def solver(self) -> solver.Solver:
    return self.solver_for(self.spec.remat)

  def solver_for(self, remat: bool) -> solver.Solver:
    if remat not in self._solvers:
      cfg = self.config.solver
      spec = dataclasses.replace(self.spec, remat=bool(remat))
      params = self._solvers[next(iter(self._solvers))].params if self._solvers else \
          self.nets.params()  # already on the devices: shared, not copied
      self._solvers[remat] = solver.Solver(spec, params, steps=cfg.steps, lr=cfg.lr,
                                           schedule=cfg.schedule, mesh=self.mesh)
    return self._solvers[remat]

  def _first_chunk(self) -> int:
    starts = ()
    if self.spec.weight("histogram") > 0:
      every = self.config.loss.mask_every or self.config.solver.steps
      starts = range(self.config.loss.histogram_start, self.config.solver.steps, every)
    return solver.chunk_plan(self.config.solver.steps, self.config.solver.chunk, starts)[0][1]

  def plan_batch(self, n_pending: int) -> None:
    """``solver.batch_size=0``: the largest batch whose compiled program fits in memory."""
    cfg = self.config.solver
    if int(cfg.batch_size) > 0 or n_pending == 0:
      return
    budget, source = batching.memory_budget(float(cfg.memory_budget_gib))
    chunk = self._first_chunk()
    peak = lambda size, remat: self.solver_for(remat).program_stats(size, chunk).peak_bytes
    # One group (a set no larger than the cap) is run at its own size: nothing to bucket.
    max_size = min(int(cfg.max_batch), batching.round_up(n_pending, self.n_devices))
    try:
      plan = batching.plan_batch(peak, budget, max_size=max_size, n_devices=self.n_devices,
                                 remat_only=bool(cfg.remat))
    except batching.DoesNotFit as e:
      raise RunError(f"solver.batch_size=0 (auto): {e}") from None
    self.batch = plan.size
    self.spec = dataclasses.replace(self.spec, remat=plan.remat)
    self.manifest["batch_plan"] = dict(plan.to_json(), budget=source)
    probes = ", ".join(f"{s}{'+remat' if r else ''}: {p / batching.GIB:.2f}"
                       for s, r, p in plan.probes)
    log(f"auto batch: {plan.size} image(s){' with remat' if plan.remat else ''} "
        f"(compiled GiB per device {probes}; usable {plan.budget_bytes / batching.GIB:.2f} "
        f"of {source})")

  def _run_size(self, n: int) -> int:
    """Batch size for ``n`` images: the full batch, or a smaller bucket (see batching)."""
    done = self.manifest["timings"]["batches"]
    image_steps = sum(b["batch"] * b["steps"] for b in done)
    run_s = sum(b["seconds"] - b["compile_seconds"] for b in done)
    compiles = list(self.solver.compile_seconds.values())
    sizes = {size for size, _ in self.solver.compile_seconds}
    return batching.choose_size(
        n, self.batch, n_devices=self.n_devices, compiled=sizes,
        seconds_per_image_step=run_s / image_steps if image_steps else None,
        compile_seconds=sum(compiles) / len(compiles) if compiles else None,
        steps=int(self.config.solver.steps))

  def _flops_per_step(self, size: int) -> float:
    if size not in self.step_flops:
      self.step_flops[size] = self.solver.step_flops(size)
    return self.step_flops[size]

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
    return np.asarray(self.embed(self.solver.params, jnp.asarray(x)))

  def _choose_from_pool(self, loaded) -> None:
    """Pool mode: each LQ's reference is the pool photo ArcFace finds most similar."""
    from sair_jax.pipeline import reference_pool
    if self._pool is None:
      paths = inputs.list_images(self.config.data.reference_pool)
      model_id = f"{self.config.checkpoints.arcface}|{self.spec.identity_variant}"
      emb = reference_pool.embed_pool(paths, self._embed_faces, model_id=model_id, log=log,
                                 size=self.nets.g.resolution,
                                 cache=os.path.join(self.folder.root, "cache", "pool.npz"))
      self._pool = (paths, emb)
    paths, emb = self._pool
    lq = np.stack([x for _, x in loaded])
    choice = reference_pool.select_references(lq, emb, self._embed_faces,
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
      from sair_jax.face.expression import infer_expression
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
    """Optimises ``rows`` and writes their results; halves the batch on out-of-memory."""
    b = self._run_size(len(rows))
    try:
      result = self._optimise(rows, b, index, total)
    except Exception as e:  # pylint: disable=broad-except
      if not batching.is_out_of_memory(e):
        raise
      smaller = batching.halve(b, self.n_devices)
      names = [r[0].name for r in rows]
      self.manifest.setdefault("oom_retries", []).append(
          {"batch": b, "retry_batch": smaller, "images": names})
      if smaller is None:
        log(f"out of device memory even at batch {b}: {len(rows)} image(s) not restored")
        for r in rows:
          self.manifest["failures"][r[0].name] = (
              f"{r[0].lq}: out of device memory at batch {b} (try solver.compute_dtype="
              "bfloat16 or solver.remat=True)")
        return
      log(f"out of device memory at batch {b}: retrying these {len(rows)} image(s) in batches "
          f"of {smaller}, and using batches of at most {smaller} from now on")
      self.batch = min(self.batch, smaller)
      for k in range(0, len(rows), smaller):
        self._optimise_and_write(rows[k:k + smaller], index, total)
      return
    self._write(rows, result)

  def _optimise(self, rows, b, index, total) -> dict:
    """Runs the solver on ``rows`` padded to ``b`` images; nothing is written here."""
    cfg, sol = self.config, self.solver
    hs = self.spec.histogram_size
    pad = lambda a: solver.pad_batch(np.asarray(a), b)
    lq = pad(np.stack([r[1] for r in rows]))
    ref_img = pad(np.stack([r[2].image for r in rows]))
    w_ref = pad(np.stack([r[2].w for r in rows]))
    direction = pad(np.stack([r[3] for r in rows]))
    on = pad(np.asarray([r[4] for r in rows], np.float32))
    lq_hist = np.stack([resize_square(x, hs) for x in lq])
    emb = self.embed(sol.params, jnp.asarray(ref_img))
    seeds = pad(np.asarray([image_seed(cfg, r[0].name) for r in rows], np.uint32))
    target = sol.shard(objective.make_target(lq, emb, w_ref, direction, on, lq_hist, hs))
    state = sol.init(w_ref, seeds)
    keys = jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds))

    def on_phase(step, state, target):
      current = np.asarray(jax.device_get(sol.render(state.w, keys)))
      m = np.asarray(self._masks(current), np.float32)
      return sol.shard(target.replace(mask=jnp.asarray(m),
                                      histogram_on=jnp.ones_like(target.histogram_on)))

    n = len(rows)
    t_batch = time.perf_counter()
    compile_before = sum(sol.compile_seconds.values())

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
    emb_out = np.asarray(self.embed(sol.params, jnp.asarray(restored)))
    seconds = time.perf_counter() - t_batch
    steps = int(cfg.solver.steps)
    self.manifest["timings"]["batches"].append(
        {"images": n, "batch": b, "steps": steps, "seconds": round(seconds, 3),
         "compile_seconds": round(sum(sol.compile_seconds.values()) - compile_before, 3),
         "seconds_per_image": round(seconds / n, 3),
         # compute actually spent per restored image (padding included)
         "image_steps_per_image": round(b * steps / n, 3),
         "gflop_per_image": round(self._flops_per_step(b) * steps / n / 1e9, 3)})
    return {"w_out": w_out, "bad": bad, "history": history, "gammas": gammas,
            "restored": restored, "emb": np.asarray(emb), "emb_out": emb_out}

  def _write(self, rows, result) -> None:
    """Writes every finished image of an optimised batch and records it in the manifest."""
    cfg, g = self.config, self.nets.g
    history, restored = result["history"], result["restored"]
    dparams = self.spec.degradation
    for i, (item, lq_i, ref, _, _) in enumerate(rows):
      if result["bad"][i]:
        first = int(np.argmax(~np.isfinite(history["total"][:, i])))
        self.manifest["failures"][item.name] = (
            f"{item.lq}: loss became non-finite at step {first}; result not written")
        continue
      losses = {k: v[:, i].tolist() for k, v in history.items()}
      final = {k: float(v[-1, i]) for k, v in history.items()}
      e_ref, e_out = result["emb"][i], result["emb_out"][i]
      sim = float(e_ref @ e_out / (np.linalg.norm(e_ref) * np.linalg.norm(e_out) + 1e-12))
      rep = report.image_report(
          restored01=restored[i], lq01=lq_i,
          degrade_fn=lambda x: degradation.degrade(jnp.asarray(x), dparams),
          identity_sim=sim, judge_distance=self._judge(restored[i], ref.image),
          expression_requested=item.expression, final_losses=final,
          thresholds=dict(cfg.report), name=item.name)
      rep.update(reference_method=ref.method, expression_gamma=float(result["gammas"][i]),
                 untrained_networks=self.nets.untrained,
                 pool_choice=self.pool_choices.get(item.name))
      panels = [resize_square(lq_i, g.resolution, Image.BICUBIC), ref.image, restored[i]]
      if item.gt:
        try:
          panels.append(read_image(item.gt))
        except ImageIOError as e:
          log(f"warning: {e} (GT left out of the strip)")
      self.folder.write_result(
          item.name, restored=restored[i], latent=result["w_out"][i], strip_panels=panels,
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
  from sair_jax.io.images import write_image
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
  restorer.plan_batch(len(pending))
  n_batches = -(-len(pending) // restorer.batch)
  log(f"{len(items)} image(s): {skipped} already restored, {len(pending)} to do in "
      f"{n_batches} batch(es) of {restorer.batch} on {restorer.n_devices} device(s)")
  folder.write_manifest(manifest)
  start, k = 0, 0
  while start < len(pending):
    batch = pending[start:start + restorer.batch]  # the batch may shrink after an OOM
    start, k = start + len(batch), k + 1
    restorer.restore_batch(batch, k, k + -(-(len(pending) - start) // restorer.batch))
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
    manifest["timings"]["image_steps_per_image"] = round(
        sum(b["batch"] * b["steps"] for b in done) / images, 3)
    manifest["timings"]["gflop_per_image"] = round(
        sum(b["gflop_per_image"] * b["images"] for b in done) / images, 3)
  folder.write_manifest(manifest)
  log(f"done: {len(manifest['finished'])} restored, {len(manifest['failures'])} failed "
      f"-> {config.output}")
  return manifest
