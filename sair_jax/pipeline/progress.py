"""Progress of a long run, as a person reads it: images done / total, seconds per image, ETA.

    12/40 images, 3.2 s/image, ETA 1m30s

Pure: the caller passes the counts and the seconds elapsed since the work it counts began
(count only the images of this run, not those a resumed run skipped, so the rate stays honest).
Between the chunks of a batch, ``done`` may count the batch in flight by the fraction of its
steps taken (``finished + images_in_batch * steps_done / steps``), so a run of one large batch
shows an ETA before its first image is finished; the line then shows one decimal.
"""

from __future__ import annotations

import math
from typing import NamedTuple


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


def progress(done: float, total: int, elapsed: float) -> Progress:
  """Progress after ``done`` of ``total`` images in ``elapsed`` seconds.

  The rate is the mean so far (``elapsed / done``); the ETA assumes the rest goes as fast.
  Before the first image the rate and ETA are unknown (None in the record).
  """
  if total < 0 or not 0 <= done <= max(total, 0) or elapsed < 0 or math.isnan(elapsed):
    raise ValueError(f"need 0 <= done <= total and elapsed >= 0, got {done}/{total}, {elapsed}")
  per_image = elapsed / done if done else None
  eta = per_image * (total - done) if per_image is not None else None
  record = {"done": done if isinstance(done, int) else round(done, 3), "total": total,
            "elapsed_seconds": round(elapsed, 3),
            "seconds_per_image": None if per_image is None else round(per_image, 3),
            "eta_seconds": None if eta is None else round(eta, 3)}
  line = f"{_count(done)}/{total} images"
  if per_image is None:
    line += ", ETA unknown"
  else:
    rate = f"{per_image:.3g}" if per_image < 10 else f"{per_image:.0f}"
    line += f", {rate} s/image, " + ("done" if done == total else f"ETA {format_duration(eta)}")
  return Progress(line, record)
