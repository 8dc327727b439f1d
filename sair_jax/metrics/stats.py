"""Summary statistics for per-image metric values: means with seeded bootstrap intervals."""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable

import numpy as np


@dataclasses.dataclass(frozen=True)
class Summary:
  """Mean of ``n`` values with a percentile-bootstrap confidence interval [lo, hi]."""
  mean: float
  lo: float
  hi: float
  n: int
  confidence: float

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def bootstrap_ci(values: Iterable[float], *, n_resamples: int = 1000, confidence: float = 0.95,
                 seed: int = 0) -> Summary | None:
  """Mean and percentile-bootstrap interval of the mean of ``values``.

  Values that are None or NaN are left out (``n`` counts the rest); None when nothing is left.
  The ``n_resamples`` resamples (with replacement, of size n) are drawn from
  ``numpy.random.default_rng(seed)``, so a given list always gives the same interval.
  +inf values (PSNR of identical images) propagate into the mean and the interval.
  """
  v = np.asarray([float(x) for x in values if x is not None and not _isnan(x)], np.float64)
  n = v.size
  if n == 0:
    return None
  mean = float(v.mean())
  if n == 1:
    return Summary(mean, mean, mean, 1, confidence)
  rng = np.random.default_rng(seed)
  idx = rng.integers(0, n, size=(n_resamples, n))  # [R, n]
  with np.errstate(invalid="ignore"):
    means = v[idx].mean(axis=1)  # [R]
  alpha = (1.0 - confidence) / 2.0
  lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
  return Summary(mean, float(lo), float(hi), n, confidence)


def _isnan(x) -> bool:
  try:
    return math.isnan(float(x))
  except (TypeError, ValueError):
    return True
