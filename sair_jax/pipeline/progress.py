"""Progress of a long run, as a person reads it: images done / total, seconds per image, ETA.

    12/40 images, 3.2 s/image, ETA 1m30s (+41s compiling)

:func:`progress` is pure: the caller passes the counts, the seconds elapsed since the work it
counts began (count only the images of this run, not those a resumed run skipped, so the rate
stays honest) and the seconds of that spent compiling. Compilation happens once per program (and
mostly in the first chunk), so it is shown apart and kept out of the rate and the ETA: with it
the first estimate of a short run was several times too long. :class:`CompileClock` measures
it from JAX's own compile events.
Between the chunks of a batch, ``done`` may count the batch in flight by the fraction of its
steps taken (``finished + images_in_batch * steps_done / steps``), so a run of one large batch
shows an ETA before its first image is finished; the line then shows one decimal.
"""

from __future__ import annotations

import bisect
import math
import threading
from typing import NamedTuple

import jax

# JAX's events for turning a function into a program: tracing, lowering, XLA compilation (or
# a load from the persistent compilation cache). Nested spans (a jit traced inside another)
# are counted once.
COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
                  "/jax/core/compile/jaxpr_to_mlir_module_duration",
                  "/jax/core/compile/backend_compile_duration")


class Progress(NamedTuple):
  line: str  # one line for the log
  record: dict  # for the manifest: done, total, elapsed_seconds, seconds_per_image, eta_seconds


def format_duration(seconds: float) -> str:
  """``45s``, ``1m30s``, ``2h05m``; rounded to whole seconds (minutes past an hour)."""
  s = max(0, int(round(seconds)))
  if s < 60:
    return f"{s}s"
  if s < 3600:
    return f"{s // 60}m{s % 60:02d}s"
  m = int(round(seconds / 60))
  return f"{m // 60}h{m % 60:02d}m"


def _count(done: float) -> str:
  return str(int(done)) if float(done).is_integer() else f"{done:.1f}"


def progress(done: float, total: int, elapsed: float, compile_seconds: float = 0.0,
             unit: str = "image") -> Progress:
  """Progress after ``done`` of ``total`` images in ``elapsed`` seconds, ``compile_seconds`` of
  which were spent compiling.

  The rate is the mean so far without compilation (``(elapsed - compile_seconds) / done``); the
  ETA assumes the rest goes as fast. Before the first image the rate and ETA are unknown (None
  in the record). The record: ``done``, ``total``, ``elapsed_seconds``, ``compile_seconds``,
  ``seconds_per_image``, ``eta_seconds`` (``unit``: what is counted, "image" or "frame",
  in the line and that key).
  """
  if total < 0 or not 0 <= done <= max(total, 0) or elapsed < 0 or math.isnan(elapsed):
    raise ValueError(f"need 0 <= done <= total and elapsed >= 0, got {done}/{total}, {elapsed}")
  if not 0 <= compile_seconds:
    raise ValueError(f"compile_seconds must be >= 0, got {compile_seconds}")
  working = max(0.0, elapsed - compile_seconds)
  per_image = working / done if done else None
  eta = per_image * (total - done) if per_image is not None else None
  record = {"done": done if isinstance(done, int) else round(done, 3), "total": total,
            "elapsed_seconds": round(elapsed, 3), "compile_seconds": round(compile_seconds, 3),
            f"seconds_per_{unit}": None if per_image is None else round(per_image, 3),
            "eta_seconds": None if eta is None else round(eta, 3)}
  line = f"{_count(done)}/{total} {unit}s"
  if per_image is None:
    line += ", ETA unknown"
  else:
    rate = f"{per_image:.3g}" if per_image < 10 else f"{per_image:.0f}"
    line += f", {rate} s/{unit}, " + ("done" if done == total else f"ETA {format_duration(eta)}")
  if compile_seconds >= 0.5:
    line += f" (+{format_duration(compile_seconds)} compiling)"
  return Progress(line, record)


class _CompileSpans:
  """The union of JAX's compile-event time spans in this process (one listener, registered on
  first use). Spans are kept disjoint and sorted; adding one costs O(log n) plus the spans it
  overlaps."""

  def __init__(self):
    self._lock = threading.Lock()
    self._starts: list[float] = []
    self._ends: list[float] = []
    self._total = 0.0
    jax.monitoring.register_event_time_span_listener(self._on_span)

  def _on_span(self, event: str, start: float, end: float, **_) -> None:
    if event not in COMPILE_EVENTS or not end > start:
      return
    with self._lock:
      i = bisect.bisect_left(self._ends, start)  # the first span ending at or after start
      j = bisect.bisect_right(self._starts, end)  # spans [i, j) overlap [start, end]
      if i < j:
        start, end = min(start, self._starts[i]), max(end, self._ends[j - 1])
        self._total -= sum(e - s for s, e in zip(self._starts[i:j], self._ends[i:j]))
      self._starts[i:j], self._ends[i:j] = [start], [end]
      self._total += end - start

  def seconds(self) -> float:
    return self._total


_SPANS: list[_CompileSpans] = []


class CompileClock:
  """Seconds this process spent compiling JAX programs since the clock was made.

  Tracing, lowering and XLA compilation (or a load from the persistent cache) of every program
  (jit, AOT), from ``jax.monitoring``'s time spans; overlapping spans count once.
  """

  def __init__(self):
    if not _SPANS:
      _SPANS.append(_CompileSpans())
    self._start = _SPANS[0].seconds()

  def seconds(self) -> float:
    return _SPANS[0].seconds() - self._start
