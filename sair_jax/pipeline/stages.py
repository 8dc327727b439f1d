"""The three stages of restoring one batch, each a function you can call and test alone.

    prepare(ctx, items)        -> (rows, failures)   pixels, expressions, references, directions
    solve(ctx, groups, size)   -> Results, as images finish: optimise in ``size`` slots
                                  (sair_jax.core.slots), shift by γ, render, embed
    finish(ctx, result)        -> [Outcome]          reports and files of every image

Items, rows and results are frozen; no stage writes the manifest (the run loop in
:mod:`sair_jax.pipeline.engine` does, from the failures, results and outcomes). A problem with one
image is an :class:`~sair_jax.errors.InputError` that becomes that image's failure; anything
else propagates.

:class:`Context` holds what every stage reads: the config, the networks, the static objective,
the output folder, the device mesh and the solvers compiled so far.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import zlib
from typing import Callable, Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from sair_jax.core import (batching, degradation, losses, objective, schedules, slots,
                           solver)
from sair_jax.errors import ConfigError, InputError
from sair_jax.face import masks
from sair_jax.io.images import ImageIOError, resize_square
from sair_jax.pipeline import inputs, outputs, references, report
from sair_jax.pipeline.networks import Networks
from sair_jax.pipeline.outputs import log


@dataclasses.dataclass(frozen=True)
class Row:
  """One image ready to optimise."""
  item: inputs.Item  # as restored: inferred expression and pool reference filled in
  lq: np.ndarray  # [h, w, 3] in [0, 1]
  reference: references.Reference
  direction: np.ndarray  # [L, D] expression direction (zeros when none)
  expression_on: float  # 1.0 when an expression is requested and available
  pool_choice: dict | None = None  # {'reference', 'similarity'} in pool mode


@dataclasses.dataclass(frozen=True)
class Result:
  """Images that left the solver together (between two compiled chunks), on the host."""
  rows: tuple[Row, ...]
  w_out: np.ndarray  # [n, L, D] final codes (γ shift included)
  bad: np.ndarray  # [n] the loss became non-finite
  histories: tuple[dict, ...]  # per image {term: [steps taken]}, with 'total'
  steps: np.ndarray  # [n] steps each image took (fewer than solver.steps: stopped early)
  gammas: np.ndarray  # [n] output shift applied along the direction
  restored: np.ndarray  # [n, H, W, 3] in [0, 1]
  ref_embedding: np.ndarray  # [n, E] ArcFace of the references
  out_embedding: np.ndarray  # [n, E] ArcFace of the restored faces


@dataclasses.dataclass(frozen=True)
class Outcome:
  """What happened to one image of a result."""
  name: str
  finished: bool
  reason: str | None = None  # one line, when not finished
  pool_choice: dict | None = None
  steps: int | None = None  # optimisation steps it took


def image_seed(config, name: str) -> int:
  """Per-image seed from the run seed and the file name (independent of batch composition)."""
  return (zlib.crc32(name.encode()) + 7919 * int(config.solver.seed)) % (2**31)


class Context:
  """What the stages of one run read: config, networks, objective, folder, mesh, solvers."""

  def __init__(self, config, nets: Networks, folder: outputs.RunFolder, mesh=None,
               lq_size: int | None = None, pool: inputs.Pool | None = None):
    """``lq_size``: of every LQ face (default ``config.data.lq_size``); ``pool``: the
    candidate references in pool mode (items without a reference take the most similar)."""
    self.config, self.nets, self.folder, self.pool_source = config, nets, folder, pool
    lq_size = config.data.lq_size if lq_size is None else lq_size
    self.factor = inputs.lq_factor(lq_size, nets.g.resolution)
    self.lq_size = nets.g.resolution // self.factor
    self.mesh = solver.batch_mesh() if mesh is None else mesh
    self.n_devices = self.mesh.devices.size
    self.spec = objective.spec_from_config(config, nets, self.factor)
    self.references = references.References(config, nets, folder, self.mesh)
    self._solvers: dict[bool, solver.Solver] = {}
    self._pool = None
    self.embed = objective.batch_embedder(self.spec)

  @property
  def solver(self) -> solver.Solver:
    return self.solver_for(self.spec.remat)

  def solver_for(self, remat: bool) -> solver.Solver:
    """The solver with rematerialisation on or off (both share the parameters on device)."""
    if remat not in self._solvers:
      cfg = self.config.solver
      spec = dataclasses.replace(self.spec, remat=bool(remat))
      params = (next(iter(self._solvers.values())).params if self._solvers
                else self.nets.params())
      optimizer = schedules.optimizer_from_config(self.config, self.nets.g.n_latent)
      self._solvers[remat] = solver.Solver(spec, params, steps=cfg.steps, optimizer=optimizer,
                                           mesh=self.mesh)
    return self._solvers[remat]

  def with_remat(self, remat: bool) -> "Context":
    """This context with rematerialisation on or off: a new Context sharing the networks,
    solvers and references (this one is left as it is)."""
    if bool(remat) == self.spec.remat:
      return self
    other = copy.copy(self)
    other.spec = dataclasses.replace(self.spec, remat=bool(remat))
    return other

  @property
  def phase_starts(self) -> list[int]:
    """Steps before which an image's face mask is recomputed (the histogram term's phases)."""
    cfg = self.config
    if self.spec.weight("histogram") <= 0:
      return []
    return list(range(int(cfg.loss.histogram_start), int(cfg.solver.steps),
                      int(cfg.loss.mask_every) or int(cfg.solver.steps)))

  @property
  def stop_rule(self) -> slots.StopRule | None:
    """Per-image early stopping from ``solver.stop_*`` (None when ``stop_tol`` is 0)."""
    cfg = self.config.solver
    if float(cfg.stop_tol) <= 0:
      return None
    return slots.StopRule(float(cfg.stop_tol), int(cfg.stop_min_steps),
                          int(cfg.stop_window) or int(cfg.chunk))

  def embed_faces(self, faces01) -> np.ndarray:
    """ArcFace features of faces [B, S, S, 3] in [0, 1], resized to the generator's size."""
    res = self.nets.g.resolution
    x = np.stack([resize_square(np.asarray(f), res) for f in faces01])
    return np.asarray(self.embed(self.solver.params, jnp.asarray(x)))

  def pool(self) -> tuple[inputs.Pool, np.ndarray]:
    """Pool mode: the pool and its embeddings [P, E] (computed once, cached on disk)."""
    if self.pool_source is None:
      raise ConfigError("pool mode without a pool (config.data.reference_pool)")
    if self._pool is None:
      from sair_jax.pipeline import reference_pool
      model_id = f"{self.config.checkpoints.arcface}|{self.spec.identity_variant}"
      emb = reference_pool.embed_pool(
          list(self.pool_source.faces), self.embed_faces, model_id=model_id, log=log,
          size=self.nets.g.resolution, cache=os.path.join(self.folder.root, "cache", "pool.npz"),
          skip_unreadable=True)
      keep = np.isfinite(emb).all(axis=1)
      if not keep.any():
        folder = os.path.dirname(self.pool_source.names[0]) or "."
        raise ConfigError(f"{folder}: no usable photo in the reference pool")
      pool = inputs.Pool(*(tuple(v for v, k in zip(values, keep) if k)
                           for values in (self.pool_source.names, self.pool_source.faces)))
      self._pool = (pool, emb[keep])
    return self._pool


# ------------------------------------------------------------------------------------ prepare


def load_lq(ctx: Context, item: inputs.Item) -> np.ndarray:
  """The LQ pixels of one item, [h, w, 3] in [0, 1] (InputError when unreadable or mis-sized)."""
  img = inputs.load_pixels(item.lq)
  if img.ndim != 3 or img.shape[:2] != (ctx.lq_size, ctx.lq_size):
    raise InputError(f"{item.where}: LQ is {img.shape[1]}x{img.shape[0]}, expected "
                     f"{ctx.lq_size}x{ctx.lq_size} (config.data.lq_size)")
  return img


def direction(ctx: Context, item: inputs.Item) -> tuple[np.ndarray, float]:
  """The expression direction an item asks for, and whether the expression term is on."""
  g, directions = ctx.nets.g, ctx.nets.directions
  if item.expression is None or directions is None:
    return np.zeros((g.n_latent, g.w_dim), np.float32), 0.0
  d = np.asarray(directions.get(item.expression), np.float32)  # UnavailableDirection: per image
  if d.shape != (g.n_latent, g.w_dim):
    raise ConfigError(f"{ctx.config.checkpoints.directions}: direction '{item.expression}' "
                      f"has shape {d.shape}, the generator needs ({g.n_latent}, {g.w_dim})")
  return d, 1.0


def prepare(ctx: Context, items: list[inputs.Item]
            ) -> tuple[list[Row], list[inputs.Failure]]:
  """Loads pixels, infers expressions, picks pool references, resolves references to W+."""
  cfg = ctx.config
  failures: list[inputs.Failure] = []
  loaded: list[tuple[inputs.Item, np.ndarray]] = []
  for item in items:
    try:
      loaded.append((item, load_lq(ctx, item)))
    except InputError as e:
      failures.append(inputs.Failure(item.name, str(e)))
  if not loaded:
    return [], failures
  lq = np.stack([x for _, x in loaded])
  if cfg.expression.mode == "infer":
    from sair_jax.face.expression import infer_expression
    labels = infer_expression(lq, ctx.nets.expression).labels
    loaded = [(dataclasses.replace(it, expression=str(e)), x)
              for (it, x), e in zip(loaded, labels)]
  choices: dict[str, dict] = {}
  if any(it.reference is None for it, _ in loaded):
    from sair_jax.pipeline import reference_pool
    pool, emb = ctx.pool()
    pick = reference_pool.select_references(lq, emb, ctx.embed_faces,
                                            size=ctx.nets.g.resolution)
    chosen = []
    for (it, x), i, sim in zip(loaded, pick.index[:, 0], pick.similarity[:, 0]):
      if it.reference is None:
        choices[it.name] = {"reference": pool.names[int(i)], "similarity": float(sim)}
        it = dataclasses.replace(it, reference=pool.faces[int(i)],
                                 reference_origin=pool.names[int(i)])
      chosen.append((it, x))
    loaded = chosen
  refs, ref_failures = ctx.references.resolve([it for it, _ in loaded])
  failures += ref_failures
  rows = []
  for item, x in loaded:
    if item.name not in refs:
      continue
    try:
      d, on = direction(ctx, item)
    except InputError as e:
      failures.append(inputs.Failure(item.name, str(e)))
      continue
    rows.append(Row(item, x, refs[item.name], d, on, choices.get(item.name)))
  return rows, failures


# -------------------------------------------------------------------------------------- solve


def face_masks(ctx: Context, images01: np.ndarray) -> np.ndarray:
  """Face masks [B, S, S] of images in [0, 1], at the histogram's resolution."""
  size = ctx.spec.histogram_size
  small = np.stack([resize_square(im, size, Image.BILINEAR) for im in images01])
  return masks.face_masks(small, value_range=(0.0, 1.0)).masks


def jobs(ctx: Context, rows: list[Row], size: int) -> list[slots.Job]:
  """The solver's jobs for ``rows`` (at most ``size``): targets, starting codes
  (``solver.start``, or an item's own ``start``; the prior stays centred on the reference's
  w_z), the temporal term's centre and weight (an item's ``neighbour``, ``neighbour_weight``),
  seeds.

  The references are embedded in one batch padded to ``size`` (one compiled shape).
  """
  cfg, sol, hs = ctx.config, ctx.solver, ctx.spec.histogram_size
  n = len(rows)
  ref_img = batching.pad_batch(np.stack([r.reference.image for r in rows]), size)
  emb = np.asarray(ctx.embed(sol.params, jnp.asarray(ref_img)))[:n]
  lq = np.stack([r.lq for r in rows])
  w_ref = np.stack([r.reference.w for r in rows])
  w_init = np.array(schedules.start_from_config(cfg, w_ref, np.asarray(ctx.nets.g.w_avg)),
                    np.float32, copy=True)
  w_neighbour = np.zeros_like(w_ref)
  for i, r in enumerate(rows):
    if r.item.start is not None:
      w_init[i] = r.item.start
    if r.item.neighbour is not None:
      w_neighbour[i] = r.item.neighbour
  target = objective.make_target(
      lq, emb, w_ref, np.stack([r.direction for r in rows]),
      np.asarray([r.expression_on for r in rows], np.float32),
      np.asarray(objective.histogram_input(jnp.asarray(lq), hs)), hs,
      w_neighbour=w_neighbour,
      temporal_scale=np.asarray([r.item.neighbour_weight if r.item.neighbour is not None else 0.0
                              for r in rows], np.float32))
  target = jax.tree_util.tree_map(np.asarray, target)
  return [slots.Job(r.item.name, w_init[i], jax.tree_util.tree_map(lambda a, i=i: a[i], target),
                    image_seed(cfg, r.item.name)) for i, r in enumerate(rows)]


def solve(ctx: Context, groups: Iterable[list[Row]], size: int, *,
          on_chunk: Callable[[str, list], None] | None = None,
          shrink: Callable[[int, int, int], int] | None = None,
          started: Callable[[slots.Stream], None] | None = None) -> Iterator[Result]:
  """Optimises the rows of ``groups`` in ``size`` slots; yields a Result as images finish.

  Rows are pulled group by group as slots free up (so ``groups`` may prepare lazily). An image
  leaves when it has taken ``solver.steps`` steps, when its loss has converged
  (:attr:`Context.stop_rule`), or when its loss became non-finite; the next image takes its
  slot. Writes nothing.

  ``on_chunk(line, slots)`` is called after every compiled chunk with a line (mean loss and
  each term over the images in the batch) and the (name, steps taken) of every image in it.
  ``shrink(active, size, steps left)``: see :class:`sair_jax.core.slots.Stream`. ``started(stream)`` is
  called with the stream before it runs (its ``in_flight`` jobs are what a failure interrupts).
  """
  cfg, sol = ctx.config, ctx.solver
  by_name: dict[str, tuple[Row, np.ndarray]] = {}  # rows in flight, with their reference's ArcFace

  def pending_jobs():
    for group in groups:
      for row, job in zip(group, jobs(ctx, group, size)):
        by_name[row.item.name] = (row, np.asarray(job.target.ref_embedding))
        yield job

  def refresh(state, target, due):
    current = np.asarray(jax.device_get(sol.render(state.w, state.key)))
    target = jax.device_get(target)
    mask = np.array(target.mask, copy=True)
    mask[due] = face_masks(ctx, current[due])
    on = np.array(target.histogram_on, copy=True)
    on[due] = 1.0
    return target.replace(mask=mask, histogram_on=on)

  def report(hist, seconds, active):
    if on_chunk is not None:
      cols = [slot for slot, _, _ in active]
      mean = lambda v: float(np.mean(np.asarray(v)[-1][cols]))  # noqa: E731
      terms = " ".join(f"{k} {mean(v):.4g}" for k, v in hist.terms.items())
      lo, hi = min(s for _, _, s in active), max(s for _, _, s in active)
      at = f"step {hi}" if lo == hi else f"steps {lo}-{hi}"
      on_chunk(f"{at}/{cfg.solver.steps}  loss {mean(hist.total):.4g}  ({terms})  "
               f"{seconds:.1f}s", [(name, steps) for _, name, steps in active])

  stream = slots.Stream(sol, pending_jobs(), size, chunk=int(cfg.solver.chunk),
                        phase_starts=ctx.phase_starts, refresh=refresh, stop=ctx.stop_rule,
                        shrink=shrink, on_chunk=report)
  if started is not None:
    started(stream)
  for finished in stream:
    rows, ref_embedding = zip(*[by_name.pop(f.key) for f in finished])
    yield render_results(ctx, list(rows), np.stack(ref_embedding), finished, size)


def render_results(ctx: Context, rows: list[Row], ref_embedding: np.ndarray,
                   finished: list[slots.Finished], size: int) -> Result:
  """γ shift, render and embed images that left the solver (padded to a bucket <= size)."""
  cfg, sol = ctx.config, ctx.solver
  n = len(rows)
  gammas = np.asarray([cfg.expression.gammas.get(r.item.expression or "", 0.0)
                       if cfg.expression.output_shift and r.expression_on else 0.0
                       for r in rows], np.float32)
  w_out = np.stack([f.w for f in finished])
  w_out += gammas[:, None, None] * np.stack([r.direction for r in rows])
  bucket = min(size, batching.bucket(n, ctx.n_devices))
  keys = jax.vmap(jax.random.PRNGKey)(
      jnp.asarray([image_seed(cfg, r.item.name) for r in rows], jnp.uint32))
  restored = np.asarray(jax.device_get(sol.render(
      jnp.asarray(batching.pad_batch(w_out, bucket)),
      jnp.asarray(batching.pad_batch(np.asarray(keys), bucket)))))
  emb = ctx.embed(sol.params, jnp.asarray(restored))
  return Result(
      rows=tuple(rows), w_out=w_out, bad=np.asarray([f.bad for f in finished]),
      histories=tuple(f.history for f in finished),
      steps=np.asarray([f.steps for f in finished]), gammas=gammas, restored=restored[:n],
      ref_embedding=ref_embedding, out_embedding=np.asarray(emb)[:n])


# ------------------------------------------------------------------------------------- finish


def _judge(ctx: Context, restored01: np.ndarray, reference01: np.ndarray) -> float | None:
  """dlib descriptor distance (the independent judge); None untrained or without dlib."""
  if ctx.nets.untrained:
    return None
  return report.dlib_judge(restored01, reference01)


def _expressions_seen(ctx: Context, result: Result) -> list[str | None]:
  """What the expression classifier sees in each restored face asked for an expression (None
  for the others, or without a loaded classifier)."""
  asked = [i for i, row in enumerate(result.rows) if row.item.expression]
  seen: list[str | None] = [None] * len(result.rows)
  if ctx.nets.expression is None or not asked:
    return seen
  from sair_jax.face.expression import infer_expression
  faces = result.restored[asked]
  labels = infer_expression(faces, ctx.nets.expression, upsample_to=faces.shape[1]).labels
  for i, label in zip(asked, labels):
    seen[i] = label
  return seen


def finish(ctx: Context, result: Result) -> list[Outcome]:
  """Reports and writes every image of ``result``; the restored PNG last (the finished mark).

  An image whose loss became non-finite is not written (its outcome says why). A failed write
  raises :class:`~sair_jax.io.files.OutputError` and ends the run; images finished before it
  keep every file.
  """
  cfg, g = ctx.config, ctx.nets.g
  dparams = ctx.spec.degradation
  seen = _expressions_seen(ctx, result)
  outcomes = []
  for i, row in enumerate(result.rows):
    item = row.item
    history = result.histories[i]
    if result.bad[i]:
      first = int(np.argmax(~np.isfinite(history["total"])))
      outcomes.append(Outcome(item.name, False, f"{item.where}: loss became non-finite at step "
                                                f"{first}; result not written"))
      continue
    restored = result.restored[i]
    final = {k: float(v[-1]) for k, v in history.items()}
    sim = float(losses.cosine_similarity(result.ref_embedding[i], result.out_embedding[i]))
    rep = report.image_report(
        restored01=restored, lq01=row.lq,
        degrade_fn=lambda x: degradation.degrade(jnp.asarray(x), dparams),
        identity_sim=sim, judge_distance=_judge(ctx, restored, row.reference.image),
        expression_seen=seen[i], expression_requested=item.expression, final_losses=final,
        thresholds=dict(cfg.report), name=item.name)
    rep.update(reference_method=row.reference.method, expression_gamma=float(result.gammas[i]),
               untrained_networks=ctx.nets.untrained, pool_choice=row.pool_choice)
    panels = [resize_square(row.lq, g.resolution, Image.BICUBIC), row.reference.image, restored]
    if item.gt is not None:
      try:
        panels.append(inputs.load_pixels(item.gt))
      except ImageIOError as e:
        log(f"warning: {e} (GT left out of the strip)")
    ctx.folder.write_result(
        item.name, restored=restored, latent=result.w_out[i], strip_panels=panels,
        losses={"steps": int(result.steps[i]), "max_steps": int(cfg.solver.steps),
                "terms": {k: v.tolist() for k, v in history.items()},
                "final": final, "weights": dict(ctx.spec.weights)},
        report=rep, reference=row.reference.image)
    outcomes.append(Outcome(item.name, True, pool_choice=row.pool_choice,
                            steps=int(result.steps[i])))
  return outcomes
