"""How many images to optimise at once: memory-planned batch sizes, padding buckets, OOM retries.

* :func:`plan_batch` (``solver.batch_size=0``): compiles candidate batch sizes ahead of time,
  reads each program's memory from XLA (:mod:`sair_jax.core.program_stats`) and takes the largest
  that fits the device's memory (or, on a CPU, ``solver.memory_budget_gib``) with a safety
  margin, trying rematerialisation when it lets a batch at least twice as large fit.
* :func:`choose_size` — a group smaller than the batch (a small test set, the last partial
  batch) is padded only to a power-of-two bucket (times the device count), or to a size
  already compiled when measured times say that recompiling would cost more than the padding.
* :func:`is_out_of_memory` — a batch that still fails with RESOURCE_EXHAUSTED is halved and
  retried by the run loop; nothing finished is lost.

Every decision here is a pure function of measured numbers, so it is tested on a CPU with small
budgets and fake measurements.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Iterable

import jax
import numpy as np

GIB = 2**30
SAFETY = 0.9  # use at most this fraction of the budget (allocator fragmentation, small programs)
REMAT_GAIN = 2  # rematerialise only when it lets a batch this many times larger fit


def round_up(n: int, multiple: int) -> int:
  """The smallest multiple of ``multiple`` that is >= ``n`` (and >= ``multiple``)."""
  return max(multiple, -(-n // multiple) * multiple)


def pad_batch(array, size: int) -> np.ndarray:
  """Pads the leading axis of ``array`` to ``size`` by repeating its first entry.

  The one padding helper: every batch whose size a compiled program fixes (the solver, the
  evaluation networks) is padded with it and its padded results are discarded.
  """
  array = np.asarray(array)
  if array.shape[0] == size:
    return array
  if array.shape[0] > size or array.shape[0] == 0:
    raise ValueError(f"cannot pad a batch of {array.shape[0]} to {size}")
  return np.concatenate([array, np.repeat(array[:1], size - array.shape[0], axis=0)], axis=0)


def bucket(n: int, n_devices: int = 1) -> int:
  """The padded size for ``n`` images: the smallest power of two times ``n_devices`` >= ``n``."""
  size = n_devices
  while size < n:
    size *= 2
  return size


def candidates(max_size: int, n_devices: int = 1) -> list[int]:
  """Batch sizes worth compiling, ascending: the buckets up to ``max_size``, and ``max_size``."""
  sizes, size = [], n_devices
  while size < max_size:
    sizes.append(size)
    size *= 2
  return sizes + [round_up(max_size, n_devices)]


def memory_budget(budget_gib: float = 0.0, device=None) -> tuple[int, str]:
  """The bytes a program may use on one device, and where that number comes from.

  ``budget_gib > 0`` is taken as given (it stands in for device memory on a CPU, and can cap
  a shared GPU). Otherwise the device's own limit (``memory_stats()['bytes_limit']``) or, on a
  CPU, half the machine's physical memory. :data:`SAFETY` is applied by the planner.
  """
  if budget_gib and budget_gib > 0:
    return int(budget_gib * GIB), f"solver.memory_budget_gib={budget_gib:g}"
  device = device or jax.local_devices()[0]
  stats = {}
  try:
    stats = device.memory_stats() or {}
  except Exception:  # backends without memory statistics (CPU)  pylint: disable=broad-except
    stats = {}
  if stats.get("bytes_limit"):
    return int(stats["bytes_limit"]), f"{device.platform} device memory"
  try:
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  except (ValueError, OSError):
    physical = 8 * GIB
  return physical // 2, "half of host memory (no device memory limit reported)"


@dataclasses.dataclass(frozen=True)
class BatchPlan:
  """The planner's choice and the measurements behind it (for the log and the manifest)."""
  size: int  # images per compiled batch
  remat: bool  # rematerialise synthesis blocks
  peak_bytes: int  # compiled memory of the chosen program
  budget_bytes: int  # usable bytes (budget x SAFETY)
  probes: tuple  # ((size, remat, peak_bytes), ...) in the order compiled

  def to_json(self) -> dict:
    return {"size": self.size, "remat": self.remat,
            "peak_gib": round(self.peak_bytes / GIB, 3),
            "usable_gib": round(self.budget_bytes / GIB, 3),
            "probes": [{"size": s, "remat": r, "peak_gib": round(p / GIB, 3)}
                       for s, r, p in self.probes]}


class DoesNotFit(Exception):
  """Not even the smallest batch fits the memory budget."""


def _largest_fit(peak: Callable[[int], int], sizes: list[int], usable: int) -> int | None:
  """Largest size whose ``peak(size) <= usable``, assuming memory grows with the batch.

  Compiles (calls ``peak``) the smallest two sizes, extrapolates linearly to a guess, and
  verifies the guess and its neighbours: typically three or four compilations, not one per size.
  """
  if peak(sizes[0]) > usable:
    return None
  if len(sizes) == 1 or peak(sizes[1]) > usable:
    return sizes[0]
  m0, m1 = peak(sizes[0]), peak(sizes[1])
  per_image = max(1.0, (m1 - m0) / (sizes[1] - sizes[0]))
  fits = [s for s in sizes if m0 + per_image * (s - sizes[0]) <= usable]
  i = sizes.index(fits[-1]) if fits else 1
  i = max(i, 1)
  while i > 1 and peak(sizes[i]) > usable:  # the guess was optimistic: step down
    i -= 1
  while i + 1 < len(sizes):  # memory grew slower than the first two sizes said: step up
    slope = (peak(sizes[i]) - m0) / (sizes[i] - sizes[0])
    if peak(sizes[i]) + slope * (sizes[i + 1] - sizes[i]) > usable or peak(sizes[i + 1]) > usable:
      break
    i += 1
  return sizes[i]


def plan_batch(peak_bytes: Callable[[int, bool], int], budget_bytes: int, *, max_size: int,
               n_devices: int = 1, allow_remat: bool = True,
               remat_only: bool = False) -> BatchPlan:
  """The largest batch (a candidate size up to ``max_size``) whose program fits the budget.

  Args:
    peak_bytes: ``(size, remat) -> bytes`` of the compiled program (compiles it; cache it).
    budget_bytes: the device's memory; :data:`SAFETY` of it is used.
    max_size: no batch larger than this (e.g. the number of images, bucketed).
    allow_remat: also try rematerialisation when the plain program does not reach
      ``max_size``; taken when it fits a batch at least :data:`REMAT_GAIN` times larger.
    remat_only: rematerialisation was requested: plan with it only.
  Raises:
    DoesNotFit: when not even ``n_devices`` images fit.
  """
  usable = int(budget_bytes * SAFETY)
  sizes = candidates(max(max_size, n_devices), n_devices)
  probes, cache = [], {}

  def measure(remat):
    def peak(size):
      if (size, remat) not in cache:
        cache[(size, remat)] = int(peak_bytes(size, remat))
        probes.append((size, remat, cache[(size, remat)]))
      return cache[(size, remat)]
    return peak

  best, remat = (None, False) if remat_only else (_largest_fit(measure(False), sizes, usable),
                                                  False)
  if (allow_remat or remat_only) and (best is None or best < sizes[-1]):
    with_remat = _largest_fit(measure(True), sizes, usable)
    if with_remat is not None and (best is None or remat_only
                                   or with_remat >= REMAT_GAIN * best):
      best, remat = with_remat, True
  if best is None:
    smallest = min(p for _, _, p in probes)
    raise DoesNotFit(
        f"a batch of {n_devices} image(s) needs {smallest / GIB:.2f} GiB per device, more than "
        f"the {usable / GIB:.2f} GiB usable ({SAFETY:.0%} of {budget_bytes / GIB:.2f} GiB); "
        "try solver.compute_dtype=bfloat16 or solver.remat=True")
  return BatchPlan(best, remat, cache[(best, remat)], usable, tuple(probes))


def choose_size(n: int, full: int, *, n_devices: int = 1, compiled: Iterable[int] = (),
                seconds_per_image_step: float | None = None,
                compile_seconds: float | None = None, steps: int = 1) -> int:
  """The batch size to run a group of ``n <= full`` images at.

  Options are the buckets from ``bucket(n)`` up to ``full`` (padding is wasted work; each new
  size is one more compilation). With measurements (seconds per image-step of the runs so far
  and seconds per compilation), the option with the least estimated time wins:
  ``size * steps * seconds_per_image_step``, plus ``compile_seconds`` if not yet compiled.
  Without them, the smallest bucket.
  """
  if n >= full:
    return full
  smallest = bucket(n, n_devices)
  options = [s for s in candidates(full, n_devices) if s >= smallest]
  if seconds_per_image_step is None or compile_seconds is None:
    return options[0]
  compiled = set(compiled)
  cost = lambda s: (s * steps * seconds_per_image_step
                    + (0.0 if s in compiled else compile_seconds))
  return min(options, key=lambda s: (cost(s), s))


def is_out_of_memory(error: BaseException) -> bool:
  """True for XLA's allocation failures (RESOURCE_EXHAUSTED / out of memory)."""
  text = str(error)
  return ("RESOURCE_EXHAUSTED" in text or "Out of memory" in text
          or "out of memory" in text) and not isinstance(error, (KeyboardInterrupt, SystemExit))


def halve(size: int, n_devices: int = 1) -> int | None:
  """The next smaller bucket after an OOM, or None when ``size`` is already the smallest."""
  if size <= n_devices:
    return None
  return min(bucket(-(-size // 2), n_devices), size - n_devices)
