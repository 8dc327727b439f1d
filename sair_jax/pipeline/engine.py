"""The engine every source runs through: records in, restored faces and one manifest out.

    engine = Engine(config)                 networks loaded once per command (and
                                            jax.distributed started once per process)
    with engine.session() as session:       the output folder locked for the whole command
        ...a flow prepares its records...   (pixels or paths: :class:`inputs.Item`)
        session.restore(items, failures, lq_size=...)   as often as it has LQ sizes
        session.record("wild", {...})       the flow's own manifest section
    session.manifest                        written after every batch and at the end

:meth:`Session.restore` is the loop::

    skip finished images (resume); batch size <- config, or planned from compiled memory
    for each group of rows:
        rows, failures <- stages.prepare(ctx, items)
        result         <- stages.solve(ctx, rows, size)   (out of memory: halve and retry)
        outcomes       <- stages.finish(ctx, result)
        manifest       <- failures, outcomes, timings      (written after every batch)

Only the session writes the manifest: ``finished``, ``failures``, ``steps``, ``pool_choices``,
``timings`` (every solver stream, with its LQ size), ``lq_sizes`` (per LQ size: images, batch,
``batch_plan`` when planned, ``oom_retries``, progress, timings), ``history`` (earlier runs
into the folder: started, updated, timings, lq_sizes) and the flows' sections. Multi-host
(``config.distributed``): every process takes every n-th image and writes
``manifest-host<i>.json``.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Iterator, Sequence

import jax

from sair_jax.core import batching, schedules, slots
from sair_jax.errors import ConfigError
from sair_jax.pipeline import inputs, networks, outputs, progress, report, stages
from sair_jax.pipeline.networks import Networks
from sair_jax.pipeline.outputs import log


_DISTRIBUTED_STARTED = False  # jax.distributed starts once per process


def init_distributed(config) -> tuple[int, int]:
  """Starts ``jax.distributed`` when ``config.distributed``; returns (process index, count).

  ``config.coordinator_address`` / ``num_processes`` / ``process_id`` are passed when set
  (otherwise JAX finds them from the cluster environment: SLURM, Open MPI, TPU pods). Called by
  :class:`Engine` before anything touches a device; later calls only read the count.
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
  return {"lq_size": ctx.lq_size, "images": images, "batch": size,
          "steps": int(ctx.config.solver.steps),
          "image_steps": int(image_steps), "seconds": round(seconds, 3),
          "compile_seconds": round(compile_seconds, 3),
          "seconds_per_image": round(seconds / n, 3),
          "image_steps_per_image": round(image_steps / n, 3),
          "gflop_per_image": round(flops[size] * image_steps / n / 1e9, 3)}


def _totals(timings: dict, seconds: float | None) -> None:
  """Means over the streams of ``timings['batches']`` (and the wall time, when given)."""
  done = timings["batches"]
  images = sum(b["images"] for b in done)
  if seconds is not None:
    timings["total_seconds"] = round(seconds, 3)
  if images:
    timings["seconds_per_image"] = round(sum(b["seconds"] for b in done) / images, 3)
    timings["image_steps_per_image"] = round(sum(b["image_steps"] for b in done) / images, 3)
    timings["gflop_per_image"] = round(sum(b["gflop_per_image"] * b["images"] for b in done)
                                       / images, 3)


# ------------------------------------------------------------------------------------ engine


class Engine:
  """What one command loads once: the networks (and ``jax.distributed``, once per process).

  Args:
    config: the command's config (``checkpoints``, ``solver``, ``loss``, ...).
    nets: the networks, when the caller has them already (tests, benchmarks); loaded from
      ``config.checkpoints`` otherwise (every missing checkpoint named at once:
      :class:`~sair_jax.pipeline.networks.MissingCheckpoints`).
  """

  def __init__(self, config, nets: Networks | None = None):
    self.config = config
    try:  # a solver setting it cannot use, in one line before anything is loaded
      schedules.check_settings(config)
    except ValueError as e:
      raise ConfigError(str(e)) from None
    self.host, self.n_hosts = init_distributed(config)  # before anything touches a device
    self.nets = networks.load_networks(config) if nets is None else nets
    if self.nets.untrained:
      log("SMOKE RUN: the networks are UNTRAINED random networks; the images are meaningless.")

  @contextlib.contextmanager
  def session(self, output: str | None = None) -> Iterator["Session"]:
    """The output folder (``config.output``) locked for everything inside the block; the
    manifest is completed and written when the block ends. When the block raises, the manifest
    as it stands is written if it can be (what finished stays recorded) and the error goes on."""
    name = "manifest.json" if self.n_hosts == 1 else f"manifest-host{self.host}.json"
    folder = outputs.RunFolder(output or self.config.output, name)
    with folder.lock():
      session = Session(self, folder)
      try:
        yield session
      except BaseException:
        try:
          folder.write_manifest(session.manifest)
        except Exception:  # pylint: disable=broad-except  (the first error is the one to see)
          pass
        raise
      session.close()


class Session:
  """One command's work in one locked output folder; the only writer of its manifest."""

  def __init__(self, engine: Engine, folder: outputs.RunFolder):
    self.engine, self.config, self.nets, self.folder = engine, engine.config, engine.nets, folder
    self._t0 = time.perf_counter()
    removed = folder.remove_temps()
    if removed:
      log(f"removed {removed} partial file(s) an interrupted run left in {folder.root}")
    previous = folder.read_manifest()
    history = list(previous.get("history", []))
    if previous.get("started"):  # what produced the images a rerun keeps
      history.append({k: previous.get(k) for k in ("started", "updated", "timings", "lq_sizes")})
    self.manifest = {
        "preset": self.config.preset, "config": self.config.to_dict(),
        "checkpoints": self.nets.sources, "untrained_networks": self.nets.untrained,
        "versions": outputs.versions(), "devices": [str(d) for d in jax.local_devices()],
        "host": [engine.host, engine.n_hosts], "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "finished": [n for n in previous.get("finished", []) if folder.done(n)],
        "failures": {}, "pool_choices": {}, "timings": {"batches": []}, "lq_sizes": {},
        "steps": {n: s for n, s in previous.get("steps", {}).items() if folder.done(n)},
        "history": history,
    }
    self._contexts: dict[tuple, stages.Context] = {}  # (LQ size, pool) -> context (solvers)

  @property
  def root(self) -> str:
    return self.folder.root

  def record(self, section: str, value) -> None:
    """Sets the manifest's ``section`` (a flow's own record) and writes the manifest."""
    self.manifest[section] = value
    self.folder.write_manifest(self.manifest)

  def context(self, lq_size: int | None = None, pool: inputs.Pool | None = None,
              steps: int | None = None, lr: float | None = None) -> stages.Context:
    """The stages' context for one LQ size (``config.data.lq_size`` by default), pool, step
    budget and learning rate (``config.solver.steps`` and ``lr`` by default; another step count
    moves the histogram phases with it: :func:`sair_jax.configs.default.with_steps`), built
    once (its solvers are compiled for them)."""
    size = int(self.config.data.lq_size if lq_size is None else lq_size)
    steps = int(self.config.solver.steps if steps is None else steps)
    lr = float(self.config.solver.lr if lr is None else lr)
    key = (size, id(pool), steps, lr)
    if key not in self._contexts:
      config = self.config
      if steps != int(config.solver.steps) or lr != float(config.solver.lr):
        from sair_jax.configs import default
        config = default.with_steps(config, steps)
        config.solver.lr = lr
      mesh = next(iter(self._contexts.values())).mesh if self._contexts else None
      self._contexts[key] = stages.Context(config, self.nets, self.folder, mesh=mesh,
                                           lq_size=size, pool=pool)
    return self._contexts[key]

  def _mine(self, items, failures):
    """This host's share: every image (restorable or not) belongs to exactly one host."""
    host, n_hosts = self.engine.host, self.engine.n_hosts
    if n_hosts == 1:
      return list(items), list(failures)
    names = sorted({it.name for it in items} | {f.name for f in failures})
    mine = set(names[host::n_hosts])
    return ([it for it in items if it.name in mine], [f for f in failures if f.name in mine])

  def fail(self, failures: Sequence[inputs.Failure]) -> None:
    """Records images a flow could not make a record of (one line each, logged); an image
    finished by an earlier run stays finished."""
    _, failures = self._mine([], failures)
    for f in failures:
      if not self.folder.done(f.name):
        self.manifest["failures"][f.name] = f.reason
        log(f"skipping {f.name}: {f.reason}")
    self.folder.write_manifest(self.manifest)

  def close(self) -> dict:
    """Report summary and totals; writes the manifest and returns it."""
    m = self.manifest
    reports = report.read_reports(os.path.join(self.root, "reports"))
    m["report_summary"] = report.summarise(list(reports.values()))
    _totals(m["timings"], time.perf_counter() - self._t0)
    self.folder.write_manifest(m)
    return m

  def restore(self, items: Sequence[inputs.Item], failures: Sequence[inputs.Failure] = (), *,
              lq_size: int | None = None, pool: inputs.Pool | None = None,
              steps: int | None = None, lr: float | None = None,
              quiet: bool = False) -> dict:
    """Restores every item not finished yet, at one LQ size; returns the manifest so far.

    ``failures``: images the flow could not make an item of (recorded, logged). ``pool``: the
    candidates for items without a reference (pool mode). ``steps``, ``lr``: every item's step
    budget and learning rate (default ``config.solver``'s; video frames started from a solved
    neighbour take fewer, smaller steps). ``quiet``: no per-call summary or progress lines (a
    flow that calls once per few frames reports its own progress; failures are still logged).
    Images
    finished before (a resumed run) are skipped; a batch that runs out of device memory is
    retried at half the size (nothing finished is lost).
    """
    items, _ = self._mine(items, [])
    self.fail(failures)
    ctx = self.context(lq_size, pool, steps, lr)
    manifest, folder = self.manifest, self.folder
    pending = [it for it in items if not folder.done(it.name)]
    for it in items:
      if folder.done(it.name) and it.name not in manifest["finished"]:
        manifest["finished"].append(it.name)
        manifest["failures"].pop(it.name, None)
    per_size = manifest["lq_sizes"].setdefault(str(ctx.lq_size), {
        "lq_size": ctx.lq_size, "images": 0, "oom_retries": [], "timings": {"batches": []}})
    per_size["images"] += len(items)
    batch, plan = plan_batch(ctx, len(pending))
    if plan:
      per_size["batch_plan"] = plan
      ctx = ctx.with_remat(plan["remat"])
    per_size["batch"] = batch
    say = (lambda _: None) if quiet else log
    say(f"{len(items)} image(s) at LQ size {ctx.lq_size}: {len(items) - len(pending)} already "
        f"restored, {len(pending)} to do, {batch} at a time on {ctx.n_devices} device(s)")
    folder.write_manifest(manifest)
    _Loop(ctx, manifest, per_size, pending, batch, say).run()
    _totals(per_size["timings"], None)
    folder.write_manifest(manifest)
    say(f"done: {len(manifest['finished'])} restored, {len(manifest['failures'])} failed "
        f"-> {folder.root}")
    return manifest


class _Loop:
  """The batch loop of :meth:`Session.restore` over one LQ size's pending items."""

  def __init__(self, ctx: stages.Context, manifest: dict, per_size: dict,
               pending: list[inputs.Item], batch: int, say=log):
    self.ctx, self.manifest, self.per_size, self.batch = ctx, manifest, per_size, batch
    self.say = say  # progress lines (failures are always logged)
    self.total = len(pending)
    self.waiting = list(pending)  # items not yet prepared
    self.given: dict[str, stages.Row] = {}  # rows handed to the solver and not finished yet
    self.handled = 0  # images finished or failed in this call
    self.t_work = time.perf_counter()
    self.compiling = progress.CompileClock()  # kept out of the rate (shown apart)
    self.flops: dict[int, float] = {}
    self.steps = int(ctx.config.solver.steps)

  def report_progress(self, done: float, line: str = "") -> None:
    p = progress.progress(done, self.total, time.perf_counter() - self.t_work,
                          self.compiling.seconds())
    self.manifest["progress"] = self.per_size["progress"] = p.record
    self.say(f"{line}  [{p.line}]" if line else p.line)

  def groups(self, size: int, retry: list[stages.Row]):
    """Rows for the solver, ``size`` at a time: rows to retry first, then new items."""
    for i in range(0, len(retry), size):
      yield retry[i:i + size]
    while self.waiting:
      take = self.waiting[:size]
      del self.waiting[:size]
      rows, failures = stages.prepare(self.ctx, take)
      for f in failures:
        self.manifest["failures"][f.name] = f.reason
        log(f"failed {f.name}: {f.reason}")
      self.handled += len(failures)
      self.given.update((r.item.name, r) for r in rows)
      if rows:
        yield rows

  def on_chunk(self, line: str, active: list) -> None:
    self.report_progress(self.handled + sum(s / self.steps for _, s in active), line)

  def _compile_seconds(self) -> float:
    return sum(self.ctx.solver.compile_seconds.values())

  def run(self) -> None:
    ctx, manifest = self.ctx, self.manifest
    done = self.per_size["timings"]["batches"]  # this LQ size's finished streams
    size = run_size(ctx, min(self.total, self.batch), self.batch, done)
    retry: list[stages.Row] = []
    while retry or self.waiting:
      t_stream, compile_before = time.perf_counter(), self._compile_seconds()
      streams, finished_here, stream_size = [], 0, size

      def shrink(active: int, size: int, steps_left: int) -> int:
        """A smaller compiled batch for the last images, when padding costs more than
        compiling."""
        live = (streams[-1].image_steps,
                time.perf_counter() - t_stream - (self._compile_seconds() - compile_before))
        return batching.choose_size(active, size, steps=steps_left,
                                    **_measured(ctx, done, live))

      try:
        for result in stages.solve(ctx, self.groups(size, retry), size, on_chunk=self.on_chunk,
                                   shrink=shrink, started=streams.append):
          self._record(stages.finish(ctx, result))
          self.handled += len(result.rows)
          finished_here += len(result.rows)
          self.report_progress(self.handled)
          ctx.folder.write_manifest(manifest)
        retry = []
      except Exception as e:  # pylint: disable=broad-except
        if not batching.is_out_of_memory(e):
          raise
        retry, size = self._out_of_memory(size)
      if streams:
        record = _timing(ctx, stream_size, finished_here, streams[0].image_steps,
                         time.perf_counter() - t_stream,
                         self._compile_seconds() - compile_before, self.flops)
        manifest["timings"]["batches"].append(record)
        self.per_size["timings"]["batches"].append(record)
      ctx.folder.write_manifest(manifest)

  def _record(self, outcomes: list[stages.Outcome]) -> None:
    manifest = self.manifest
    for o in outcomes:
      self.given.pop(o.name, None)
      if o.finished:
        manifest["finished"].append(o.name)
        manifest["failures"].pop(o.name, None)
        manifest["steps"][o.name] = o.steps
        if o.pool_choice:
          manifest["pool_choices"][o.name] = o.pool_choice
      else:
        manifest["failures"][o.name] = o.reason
        log(f"failed {o.name}: {o.reason}")

  def _out_of_memory(self, size: int) -> tuple[list[stages.Row], int]:
    """Rows in flight or prepared go back to be retried at half the batch (or fail at 1)."""
    retry = list(self.given.values())  # nothing finished is lost
    smaller = batching.halve(size, self.ctx.n_devices)
    self.per_size["oom_retries"].append(
        {"batch": size, "retry_batch": smaller, "images": [r.item.name for r in retry]})
    if smaller is None:
      log(f"out of device memory even at batch {size}: {len(retry)} image(s) not restored")
      for r in retry:
        self.manifest["failures"][r.item.name] = (
            f"{r.item.where}: out of device memory at batch {size} (try "
            "solver.compute_dtype=bfloat16 or solver.remat=True)")
      self.handled += len(retry)
      self.given.clear()
      return [], size
    log(f"out of device memory at batch {size}: retrying {len(retry)} image(s) in "
        f"batches of {smaller}, and using batches of at most {smaller} from now on")
    return retry, smaller
