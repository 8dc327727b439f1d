"""Temporal steadiness of a restored clip against its ground truth.

Restoring frames one by one makes faces *flicker*: details change between frames where the
truth changes little. With ``diff(x) = mean_t mean_pixels |x_{t+1} − x_t|`` (consecutive
frames, [0, 1] pixel units),

    flicker(restored, gt) = diff(restored) / diff(gt)

1.0 is as steady as the truth; above 1, the restoration changes more between frames than the
scene does (flicker); below 1, less (a face frozen while the truth moves). This is the
measure of the video issue's known-answer clip (README "Video").
"""

from __future__ import annotations

import numpy as np


def frame_difference(frames) -> float:
  """Mean |x_{t+1} − x_t| over consecutive frames [T, H, W, C] (T >= 2) and all pixels."""
  x = np.asarray(frames, np.float64)
  if x.ndim != 4 or x.shape[0] < 2:
    raise ValueError(f"expected frames [T >= 2, H, W, C], got shape {x.shape}")
  return float(np.mean(np.abs(np.diff(x, axis=0))))


def flicker(restored, gt) -> float:
  """:func:`frame_difference` of ``restored`` over that of ``gt`` (same shapes [T, H, W, C]).

  Raises:
    ValueError: shapes differ, fewer than two frames, or the ground truth does not move at all
      (the ratio is undefined).
  """
  restored, gt = np.asarray(restored), np.asarray(gt)
  if restored.shape != gt.shape:
    raise ValueError(f"restored {restored.shape} and ground truth {gt.shape} differ in shape")
  truth = frame_difference(gt)
  if truth == 0.0:
    raise ValueError("the ground truth does not change between frames: flicker is undefined")
  return frame_difference(restored) / truth
