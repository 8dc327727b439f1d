"""One restoration run over a whole test set: ``run(config)`` does everything ``main`` offers.

The loop::

    networks  <- every checkpoint the config needs (all missing ones named at once)
    items     <- inputs.discover(config)            (per-image problems: failures)
    lock the output folder; delete stray temporaries; skip finished images
    batch size <- config, or planned from compiled memory (solver.batch_size=0)
    for each batch:
        rows, failures <- stages.prepare(ctx, items)
        result         <- stages.solve(ctx, rows, size)   (out of memory: halve and retry)
        outcomes       <- stages.finish(ctx, result)
        manifest       <- failures, outcomes, timings      (written after every batch)

Only this loop writes the manifest. Multi-host (``config.distributed``): every process takes
every n-th image and writes ``manifest-host<i>.json``.
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from sair_jax.core import batching, degradation, objective, slots
from sair_jax.errors import ConfigError
from sair_jax.pipeline import inputs, outputs, progress, report, stages
from sair_jax.pipeline.networks import Networks, load_networks
from sair_jax.pipeline.outputs import log


_DISTRIBUTED_STARTED = False  # jax.distributed starts once per process


def init_distributed(config) -> tuple[int, int]:
  """Starts ``jax.distributed`` when ``config.distributed``; returns (process index, count).

  ``config.coordinator_address`` / ``num_processes`` / ``process_id`` are passed when set
  (otherwise JAX finds them from the cluster environment: SLURM, Open MPI, TPU pods). Call it
  before anything touches a device; later calls (a flow's runs) only read the count.
  """
  global _DISTRIBUTED_STARTED
  if config.distributed and not _DISTRIBUTED_STARTED:
    kwargs = {}
    if config.get("coordinator_address"):
      kwargs["coordinator_address"] = str(config.coordinator_address)
    if int(config.get("num_processes", 0)) > 0:
      kwargs["num_processes"] = int(config.num_processes)
    if int(config.get("process_id", -1)) >= 0:
      kwargs["process_id"] = int(config.process_id)
    try:
      jax.distributed.initialize(**kwargs)
    except (ValueError, RuntimeError) as e:
      raise ConfigError(f"config.distributed: cannot start jax.distributed "
                        f"({str(e).splitlines()[0]})") from None
    _DISTRIBUTED_STARTED = True
  return jax.process_index(), jax.process_count()


# ------------------------------------------------------------------------------ batch sizes


def _first_chunk(ctx: stages.Context) -> int:
  """The length of the first compiled chunk (the program the batch planner measures)."""
  cfg = ctx.config.solver
  return slots.chunk_length([0], int(cfg.chunk), ctx.phase_starts, int(cfg.steps))


def plan_batch(ctx: stages.Context, n_pending: int) -> tuple[int, dict | None]:
  """The batch size, and the plan's record when ``solver.batch_size=0`` chose it.

  Auto: the largest batch (rematerialised when that lets a larger one fit) whose compiled
  program fits the device's memory, or ``solver.memory_budget_gib``; the record's ``remat``
  says which solver to run (``ctx.with_remat``).
  """
  cfg = ctx.config.solver
  if int(cfg.batch_size) > 0 or n_pending == 0:
    return batching.round_up(max(1, int(cfg.batch_size)), ctx.n_devices), None
  budget, source = batching.memory_budget(float(cfg.memory_budget_gib))
  chunk = _first_chunk(ctx)
  peak = lambda size, remat: ctx.solver_for(remat).program_stats(size, chunk).peak_bytes  # noqa
  # One group (a set no larger than the cap) is run at its own size: nothing to bucket.
  max_size = min(int(cfg.max_batch), batching.round_up(n_pending, ctx.n_devices))
  try:
    plan = batching.plan_batch(peak, budget, max_size=max_size, n_devices=ctx.n_devices,
                               remat_only=bool(cfg.remat))
  except batching.DoesNotFit as e:
    raise ConfigError(f"solver.batch_size=0 (auto): {e}") from None
  probes = ", ".join(f"{s}{'+remat' if r else ''}: {p / batching.GIB:.2f}"
                     for s, r, p in plan.probes)
  log(f"auto batch: {plan.size} image(s){' with remat' if plan.remat else ''} "
      f"(compiled GiB per device {probes}; usable {plan.budget_bytes / batching.GIB:.2f} "
      f"of {source})")
  return plan.size, dict(plan.to_json(), budget=source)


def _measured(ctx: stages.Context, done: list[dict], live: tuple[int, float] = (0, 0.0)) -> dict:
  """Seconds per image-step and per compilation so far (batching.choose_size's inputs).

  ``done``: the manifest's records of finished streams; ``live``: (image-steps, seconds
  without compilation) of the stream running now.
  """
  image_steps = sum(b["image_steps"] for b in done) + live[0]
  run_s = sum(b["seconds"] - b["compile_seconds"] for b in done) + live[1]
  compiles = list(ctx.solver.compile_seconds.values())
  return dict(n_devices=ctx.n_devices, compiled={size for size, _ in ctx.solver.compile_seconds},
              seconds_per_image_step=run_s / image_steps if image_steps else None,
              compile_seconds=sum(compiles) / len(compiles) if compiles else None)


def run_size(ctx: stages.Context, n: int, batch: int, done: list[dict]) -> int:
  """Compiled size for ``n`` images: the full batch or a smaller bucket (see batching)."""
  return batching.choose_size(n, batch, steps=int(ctx.config.solver.steps),
                              **_measured(ctx, done))


# ---------------------------------------------------------------------------------- manifest


def _timing(ctx: stages.Context, size: int, images: int, image_steps: int, seconds: float,
            compile_seconds: float, flops: dict) -> dict:
  """The manifest's record of one solver stream (compute spent per image, padding included)."""
  if size not in flops:
    flops[size] = ctx.solver.step_flops(size) / size  # per image-step
  n = max(images, 1)
  return {"images": images, "batch": size, "steps": int(ctx.config.solver.steps),
          "image_steps": int(image_steps), "seconds": round(seconds, 3),
          "compile_seconds": round(compile_seconds, 3),
          "seconds_per_image": round(seconds / n, 3),
          "image_steps_per_image": round(image_steps / n, 3),
          "gflop_per_image": round(flops[size] * image_steps / n / 1e9, 3)}


def _totals(manifest: dict, seconds: float) -> None:
  timings = manifest["timings"]
  done = timings["batches"]
  images = sum(b["images"] for b in done)
  timings["total_seconds"] = round(seconds, 3)
  if images:
    timings["seconds_per_image"] = round(sum(b["seconds"] for b in done) / images, 3)
    timings["image_steps_per_image"] = round(sum(b["image_steps"] for b in done) / images, 3)
    timings["gflop_per_image"] = round(sum(b["gflop_per_image"] * b["images"] for b in done)
                                       / images, 3)


# --------------------------------------------------------------------------------------- run


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
  to01 = lambda x: np.asarray(objective.to_unit_range(x, "clip"))  # noqa: E731
  gt, ref = to01(g.synthesis(ws[:n])), to01(g.synthesis(ref_ws))
  lq = np.asarray(degradation.bicubic_downsample(jnp.asarray(gt),
                                                 g.resolution // int(config.data.lq_size)))
  from sair_jax.io.images import write_image
  for i in range(n):
    write_image(os.path.join(lq_dir, f"face{i}.png"), lq[i])
    write_image(os.path.join(ref_dir, f"face{i}.png"), ref[i])
  config.data.lq, config.data.references = lq_dir, ref_dir


def run(config, nets: Networks | None = None) -> dict:
  """Restores every image of ``config.data.lq`` into ``config.output``; returns the manifest.

  ``nets``: the networks ``config`` needs, when the caller has loaded them already (a flow that
  runs several times, or used the generator first); loaded here otherwise.
  """
  t0 = time.perf_counter()
  host, n_hosts = init_distributed(config)
  nets = load_networks(config) if nets is None else nets
  if nets.untrained:
    log("SMOKE RUN: the networks are UNTRAINED random networks; the images are meaningless.")
    if not config.data.lq:
      _smoke_inputs(config, nets)
  items, early_failures = inputs.discover(config)
  if n_hosts > 1:  # every image (restorable or not) belongs to exactly one host
    names = sorted({it.name for it in items} | {f.name for f in early_failures})
    mine = set(names[host::n_hosts])
    items = [it for it in items if it.name in mine]
    early_failures = [f for f in early_failures if f.name in mine]
  folder = outputs.RunFolder(config.output,
                             "manifest.json" if n_hosts == 1 else f"manifest-host{host}.json")
  with folder.lock():
    return _run_locked(config, nets, folder, items, early_failures, (host, n_hosts), t0)


def _run_locked(config, nets, folder, items, early_failures, hosts, t0) -> dict:
  removed = folder.remove_temps()
  if removed:
    log(f"removed {removed} partial file(s) an interrupted run left in {folder.root}")
  previous = folder.read_manifest()
  manifest = {
      "preset": config.preset, "config": config.to_dict(), "checkpoints": nets.sources,
      "untrained_networks": nets.untrained, "versions": outputs.versions(),
      "devices": [str(d) for d in jax.local_devices()], "host": list(hosts),
      "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
      "finished": [n for n in previous.get("finished", []) if folder.done(n)],
      "failures": {f.name: f.reason for f in early_failures},
      "pool_choices": {}, "timings": {"batches": []},
      "steps": {n: s for n, s in previous.get("steps", {}).items() if folder.done(n)},
  }
  pending = [it for it in items if not folder.done(it.name)]
  for it in items:
    if folder.done(it.name) and it.name not in manifest["finished"]:
      manifest["finished"].append(it.name)
  for f in early_failures:
    log(f"skipping {f.name}: {f.reason}")
  ctx = stages.Context(config, nets, folder)
  batch, plan = plan_batch(ctx, len(pending))
  if plan:
    manifest["batch_plan"] = plan
    ctx = ctx.with_remat(plan["remat"])
  log(f"{len(items)} image(s): {len(items) - len(pending)} already restored, {len(pending)} to "
      f"do, {batch} at a time on {ctx.n_devices} device(s)")
  folder.write_manifest(manifest)
  flops: dict[int, float] = {}
  steps = int(config.solver.steps)
  waiting = list(pending)  # items not yet prepared
  given: dict[str, stages.Row] = {}  # rows handed to the solver and not finished yet
  handled, t_work = 0, time.perf_counter()  # images finished or failed in this run
  compiling = progress.CompileClock()  # kept out of the rate (shown apart)

  def report_progress(done: float, line: str = "") -> None:
    p = progress.progress(done, len(pending), time.perf_counter() - t_work, compiling.seconds())
    manifest["progress"] = p.record
    log(f"{line}  [{p.line}]" if line else p.line)

  def groups(size: int, retry: list[stages.Row]):
    """Rows for the solver, ``size`` at a time: rows to retry first, then new items."""
    nonlocal handled
    for i in range(0, len(retry), size):
      yield retry[i:i + size]
    while waiting:
      take = waiting[:size]
      del waiting[:size]
      rows, failures = stages.prepare(ctx, take)
      for f in failures:
        manifest["failures"][f.name] = f.reason
        log(f"failed {f.name}: {f.reason}")
      handled += len(failures)
      given.update((r.item.name, r) for r in rows)
      if rows:
        yield rows

  def on_chunk(line: str, active: list) -> None:
    report_progress(handled + sum(s / steps for _, s in active), line)

  def shrink(active: int, size: int, steps_left: int) -> int:
    """A smaller compiled batch for the last images, when padding costs more than compiling."""
    live = (streams[-1].image_steps, time.perf_counter() - t_stream
            - (sum(ctx.solver.compile_seconds.values()) - compile_before))
    return batching.choose_size(active, size, steps=steps_left,
                                **_measured(ctx, manifest["timings"]["batches"], live))

  retry: list[stages.Row] = []
  size = run_size(ctx, min(len(pending), batch), batch, manifest["timings"]["batches"])
  while retry or waiting:
    t_stream, compile_before = time.perf_counter(), sum(ctx.solver.compile_seconds.values())
    streams, finished_here, stream_size = [], 0, size
    try:
      for result in stages.solve(ctx, groups(size, retry), size, on_chunk=on_chunk,
                                 shrink=shrink, started=streams.append):
        for o in stages.finish(ctx, result):
          given.pop(o.name, None)
          if o.finished:
            manifest["finished"].append(o.name)
            manifest["failures"].pop(o.name, None)
            manifest["steps"][o.name] = o.steps
            if o.pool_choice:
              manifest["pool_choices"][o.name] = o.pool_choice
          else:
            manifest["failures"][o.name] = o.reason
            log(f"failed {o.name}: {o.reason}")
        handled += len(result.rows)
        finished_here += len(result.rows)
        report_progress(handled)
        folder.write_manifest(manifest)
      retry = []
    except Exception as e:  # pylint: disable=broad-except
      if not batching.is_out_of_memory(e):
        raise
      retry = list(given.values())  # in flight or prepared: nothing finished is lost
      smaller = batching.halve(size, ctx.n_devices)
      manifest.setdefault("oom_retries", []).append(
          {"batch": size, "retry_batch": smaller, "images": [r.item.name for r in retry]})
      if smaller is None:
        log(f"out of device memory even at batch {size}: {len(retry)} image(s) not restored")
        for r in retry:
          manifest["failures"][r.item.name] = (
              f"{r.item.lq}: out of device memory at batch {size} (try "
              "solver.compute_dtype=bfloat16 or solver.remat=True)")
        handled += len(retry)
        given.clear()
        retry = []
      else:
        log(f"out of device memory at batch {size}: retrying {len(retry)} image(s) in "
            f"batches of {smaller}, and using batches of at most {smaller} from now on")
        size = smaller
    if streams:
      manifest["timings"]["batches"].append(_timing(
          ctx, stream_size, finished_here, streams[0].image_steps, time.perf_counter() - t_stream,
          sum(ctx.solver.compile_seconds.values()) - compile_before, flops))
    folder.write_manifest(manifest)
  reports = report.read_reports(os.path.join(config.output, "reports"))
  manifest["report_summary"] = report.summarise(list(reports.values()))
  _totals(manifest, time.perf_counter() - t0)
  folder.write_manifest(manifest)
  log(f"done: {len(manifest['finished'])} restored, {len(manifest['failures'])} failed "
      f"-> {config.output}")
  return manifest
