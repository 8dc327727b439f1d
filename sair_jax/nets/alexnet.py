"""torchvision's AlexNet feature extractor as a Flax module, tapped after each ReLU (for LPIPS).

Layout of ``torchvision.models.alexnet().features`` (the ``features.{i}`` indices are the
torch module indices, which the converter maps to the Flax names ``conv1`` .. ``conv5``)::

    features.0  conv 11x11 stride 4 pad 2 (3 -> 64)    -> ReLU  = tap 1
                max-pool 3x3 stride 2
    features.3  conv 5x5 pad 2 (64 -> 192)             -> ReLU  = tap 2
                max-pool 3x3 stride 2
    features.6  conv 3x3 pad 1 (192 -> 384)            -> ReLU  = tap 3
    features.8  conv 3x3 pad 1 (384 -> 256)            -> ReLU  = tap 4
    features.10 conv 3x3 pad 1 (256 -> 256)            -> ReLU  = tap 5
                (max-pool: not needed by LPIPS, not computed)

These are LPIPS's five ``slice`` outputs (``relu1`` .. ``relu5``). The widths come from the
checkpoint (``meta["widths"]``); torch's max-pool (no padding, floor mode) is Flax's 'VALID'.
NHWC throughout. Convolutions run at full float32 precision (no TF32/bf16 passes on GPUs): this
network only measures.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax

# (kernel, stride, padding, max-pool before the conv) of the five convolutions.
CONVS = ((11, 4, 2, False), (5, 1, 2, True), (3, 1, 1, True), (3, 1, 1, False), (3, 1, 1, False))
# torch module index of each convolution inside `features`.
TORCH_INDEX = (0, 3, 6, 8, 10)
WIDTHS = (64, 192, 384, 256, 256)  # torchvision's AlexNet


class AlexNetFeatures(nn.Module):
  """AlexNet ``features`` up to the fifth ReLU; returns the five ReLU outputs."""
  widths: Sequence[int] = WIDTHS  # output channels of conv1 .. conv5

  @nn.compact
  def __call__(self, x) -> list:  # [B, H, W, 3], already LPIPS-scaled
    taps = []
    for i, ((k, stride, pad, pool), width) in enumerate(zip(CONVS, self.widths)):
      if pool:
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")
      x = nn.Conv(width, (k, k), strides=(stride, stride), padding=((pad, pad), (pad, pad)),
                  precision=jax.lax.Precision.HIGHEST, name=f"conv{i + 1}")(x)
      x = nn.relu(x)  # [B, H_i, W_i, width_i]
      taps.append(x)
    return taps


def output_sizes(h: int, w: int) -> list[tuple[int, int]]:
  """Spatial size of each tap for an [h, w] input (to check that an input is large enough)."""
  sizes = []
  for k, stride, pad, pool in CONVS:
    if pool:
      h, w = (h - 3) // 2 + 1, (w - 3) // 2 + 1
    h, w = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    sizes.append((h, w))
  return sizes


def min_input_side() -> int:
  """The smallest square input whose every tap is at least 1x1."""
  side = 1
  while min(min(s) for s in output_sizes(side, side)) < 1:
    side += 1
  return side

