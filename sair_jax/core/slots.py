"""A stream of images optimised in a fixed number of slots: images enter and leave the batch.

The compiled solver runs a batch of ``size`` slots. Each slot holds one image with its own W+
code, Adam state, PRNG key and step counter, so images in one batch need not have started
together. Between compiled chunks (the only time the host sees the state) the stream

1. finishes every image that is done — it reached ``steps``, its loss became non-finite, or
   (with a :class:`StopRule`) its loss has converged — and hands it to the caller at once;
2. fills the free slots with the next images of the caller's iterator (fresh W+, Adam state,
   key, step 0, target), so no compiled step computes for a finished image while images wait;
3. refreshes the targets of the slots that reached a phase start (the histogram term's face
   masks) through the caller's ``refresh``;
4. runs the next chunk: ``chunk`` steps, or fewer so that no slot steps past its next phase
   start or its last step (in a config whose phase starts and step count are multiples of
   ``chunk``, every chunk has length ``chunk`` and one program is compiled).

An image's result does not depend on which slot it ran in or what ran beside it: its noise key
is ``fold_in(PRNGKey(seed), step)``, its learning rate follows its own step count (optax's count
in its own Adam state), and every slot's arithmetic is independent (vmap).

Slots left empty once the iterator is exhausted compute a copy of an image already there (their
results are dropped); ``shrink(active, size, steps left) -> size`` lets the caller move the
remaining images to a smaller compiled batch when that is cheaper.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Iterable, Iterator, NamedTuple

import jax
import numpy as np

from sair_jax.core import objective
from sair_jax.core.solver import History, Solver, State


class Job(NamedTuple):
  """One image to optimise."""
  key: Any  # the caller's handle, hashable and unique (returned with the result)
  w_init: np.ndarray  # [L, D] starting W+ code (w_z)
  target: objective.Target  # this image's target, no batch axis
  seed: int  # noise key and per-image randomness


class Finished(NamedTuple):
  """One image that left the batch."""
  key: Any
  w: np.ndarray  # [L, D] final W+ code
  history: dict  # {term: [steps]} per-step values, with 'total'
  steps: int  # steps taken
  bad: bool  # its loss or update became non-finite (w is the last finite value)
  converged: bool  # left early by the StopRule


@dataclasses.dataclass(frozen=True)
class StopRule:
  """Per-image early stopping: the loss has converged.

  After at least ``min_steps`` steps, an image leaves when the mean of its total loss over the
  last ``window`` steps is lower than over the ``window`` steps before by less than ``tol``
  times the latter (checked between chunks). Both windows must lie after ``since``, the
  latest phase start (a term switching on changes the loss). ``tol <= 0``: never.
  """
  tol: float
  min_steps: int
  window: int

  def converged(self, totals: np.ndarray, since: int = 0) -> bool:
    n, win = len(totals), self.window
    if self.tol <= 0 or win < 1 or n < self.min_steps or n - since < 2 * win:
      return False
    current = float(np.mean(totals[n - win:]))
    before = float(np.mean(totals[n - 2 * win:n - win]))
    return before - current <= self.tol * abs(before)


def chunk_length(steps_now: Iterable[int], chunk: int, phase_starts: Iterable[int],
                 steps: int) -> int:
  """Steps of the next compiled chunk: ``chunk``, or fewer so that no image passes its next
  phase start or its last step (images at ``steps_now``)."""
  n = chunk
  for s in steps_now:
    n = min(n, min([p for p in phase_starts if p > s] + [steps]) - s)
  return max(1, n)


def _set_rows(tree, rows: list[int], values):
  """``tree`` (host arrays, leading axis = slots) with ``tree[rows] = values`` on every leaf."""
  def put(leaf, value):
    leaf = np.array(leaf, copy=True)
    leaf[rows] = value
    return leaf
  return jax.tree_util.tree_map(put, tree, values)


def _take_rows(tree, rows: list[int]):
  return jax.tree_util.tree_map(lambda leaf: np.asarray(leaf)[rows], tree)


def _stack(targets: list[objective.Target]) -> objective.Target:
  return jax.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *targets)


class Stream:
  """Optimises the images of ``jobs`` in ``size`` slots; iterate it for lists of Finished.

  Args:
    solver: the compiled solver (its ``steps`` is every image's step budget).
    jobs: an iterable of :class:`Job` (pulled lazily, as slots free up).
    size: slots (the compiled batch size).
    chunk: steps per compiled call (at most).
    phase_starts: steps before which ``refresh`` must update a slot's target.
    refresh: ``(state, target, slots) -> target`` (host-side, e.g. face masks of the current
      images of those slots).
    stop: a :class:`StopRule`, or None to run every image for ``solver.steps`` steps.
    shrink: ``(active, size, steps left) -> new size`` once no images wait (None: never).
    on_chunk: ``(history, seconds, active)`` after every compiled chunk; ``active`` lists the
      (slot, key, steps taken) of every image in the batch (``history`` covers every slot).
  """

  def __init__(self, solver: Solver, jobs: Iterable[Job], size: int, *, chunk: int,
               phase_starts: Iterable[int] = (),
               refresh: Callable[[State, objective.Target, list[int]], objective.Target]
               | None = None,
               stop: StopRule | None = None,
               shrink: Callable[[int, int, int], int] | None = None,
               on_chunk: Callable[[History, float, list], None] | None = None):
    self.solver, self.size, self.chunk = solver, int(size), int(chunk)
    self.steps = int(solver.steps)
    self.phase_starts = sorted({int(s) for s in phase_starts if 0 <= int(s) < self.steps})
    self.refresh, self.stop, self.shrink, self.on_chunk = refresh, stop, shrink, on_chunk
    self._jobs = iter(jobs)
    self._exhausted = False
    self.slots: list[Job | None] = [None] * self.size  # the job in each slot (None: free)
    self._history: list[dict[str, list]] = [{} for _ in range(self.size)]
    self._state: State | None = None
    self._target: objective.Target | None = None
    self.image_steps = 0  # slot-steps computed (padding included): the compute spent

  # ------------------------------------------------------------------------------- helpers

  @property
  def active(self) -> list[int]:
    return [i for i, job in enumerate(self.slots) if job is not None]

  @property
  def in_flight(self) -> list[Job]:
    """The jobs pulled from the iterator and not yet finished (to retry after a failure)."""
    return [job for job in self.slots if job is not None]

  def _next_jobs(self, n: int) -> list[Job]:
    out = []
    while len(out) < n and not self._exhausted:
      job = next(self._jobs, None)
      if job is None:
        self._exhausted = True
      else:
        out.append(job)
    return out

  def _fill(self) -> list[int]:
    """Puts waiting jobs into free slots; returns the slots filled."""
    free = [i for i, job in enumerate(self.slots) if job is None]
    new = self._next_jobs(len(free))
    if not new:
      return []
    rows = free[:len(new)]
    fresh = jax.device_get(self.solver.initial_state(np.stack([j.w_init for j in new]),
                                                     np.asarray([j.seed for j in new],
                                                                np.uint32)))
    targets = _stack([j.target for j in new])
    if self._state is None:  # the first fill: every slot gets a job or a copy of the first
      pad = [rows.index(i) if i in rows else 0 for i in range(self.size)]
      state, target = _take_rows(fresh, pad), _take_rows(targets, pad)
    else:
      state = _set_rows(jax.device_get(self._state), rows, fresh)
      target = _set_rows(jax.device_get(self._target), rows, targets)
    self._state, self._target = self.solver.shard(state), self.solver.shard(target)
    for i, job in zip(rows, new):
      self.slots[i] = job
      self._history[i] = {}
    return rows

  def _steps(self) -> np.ndarray:
    return np.asarray(jax.device_get(self._state.step))


  def _finish(self, i: int, w: np.ndarray, bad: bool, converged: bool) -> Finished:
    job, hist = self.slots[i], self._history[i]
    history = {k: np.concatenate(v) for k, v in hist.items()}
    self.slots[i], self._history[i] = None, {}
    return Finished(job.key, w, history, len(history["total"]), bool(bad), converged)

  def _maybe_shrink(self) -> None:
    active = self.active
    if self.shrink is None or not self._exhausted or not active:
      return
    steps = self._steps()
    remaining = max(self.steps - int(steps[i]) for i in active)
    new_size = int(self.shrink(len(active), self.size, remaining))
    if new_size >= self.size or new_size < len(active):
      return
    keep = active + [active[0]] * (new_size - len(active))
    state = _take_rows(jax.device_get(self._state), keep)
    target = _take_rows(jax.device_get(self._target), keep)
    self._state, self._target = self.solver.shard(state), self.solver.shard(target)
    self.slots = [self.slots[i] for i in active] + [None] * (new_size - len(active))
    self._history = [self._history[i] for i in active] + [{} for _ in range(new_size - len(active))]
    self.size = new_size

  # ---------------------------------------------------------------------------------- loop

  def __iter__(self) -> Iterator[list[Finished]]:
    self._fill()
    while self.active:
      steps = self._steps()
      due = [i for i in self.active if int(steps[i]) in self.phase_starts]
      if due and self.refresh is not None:
        self._target = self.solver.shard(self.refresh(self._state, self._target, due))
      n = chunk_length([int(steps[i]) for i in self.active], self.chunk, self.phase_starts,
                       self.steps)
      t0 = time.perf_counter()
      self._state, hist = self.solver.run_chunk(self._state, self._target, n)
      hist = jax.device_get(hist)
      seconds = time.perf_counter() - t0
      self.image_steps += n * self.size
      for i in self.active:
        h = self._history[i]
        h.setdefault("total", []).append(np.asarray(hist.total)[:, i])
        for k, v in hist.terms.items():
          h.setdefault(k, []).append(np.asarray(v)[:, i])
      steps, bad = self._steps(), np.asarray(jax.device_get(self._state.bad))
      if self.on_chunk is not None:
        self.on_chunk(hist, seconds,
                      [(i, self.slots[i].key, int(steps[i])) for i in self.active])
      leaving = []
      for i in self.active:
        since = max([p for p in self.phase_starts if p <= int(steps[i])], default=0)
        converged = (self.stop is not None and int(steps[i]) < self.steps
                     and self.stop.converged(np.concatenate(self._history[i]["total"]), since))
        if bad[i] or int(steps[i]) >= self.steps or converged:
          leaving.append((i, bool(converged and not bad[i])))
      if leaving:
        w = np.asarray(jax.device_get(self._state.w))
        yield [self._finish(i, w[i], bad[i], converged) for i, converged in leaving]
      if self._fill():
        continue
      self._maybe_shrink()


def run_all(solver: Solver, jobs: Iterable[Job], size: int, **kwargs) -> list[Finished]:
  """Every image of ``jobs`` optimised (:class:`Stream` with ``kwargs``), in the jobs' order."""
  jobs = list(jobs)
  order = {job.key: n for n, job in enumerate(jobs)}
  done = [f for group in Stream(solver, jobs, size, **kwargs) for f in group]
  return sorted(done, key=lambda f: order[f.key])
