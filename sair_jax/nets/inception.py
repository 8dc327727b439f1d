"""pytorch-fid's FID-Inception (Inception-v3 with the TF-FID patches) as a Flax module.

The network that every published FID number is computed with: torchvision's Inception-v3
topology with the weights of the 2015 TensorFlow graph, whose Inception-A/C/E blocks differ from
torchvision's (pytorch-fid's ``FIDInceptionA/C/E_1/E_2``):

* the average pools of the A, C and E blocks exclude the zero padding from the count
  (``count_include_pad=False``);
* the last block (``Mixed_7c``, E_2) pools its ``branch_pool`` input with a max-pool.

Layout (every conv is ``BasicConv2d``: conv without bias -> BatchNorm(eps=1e-3) -> ReLU)::

    Conv2d_1a_3x3 s2 -> Conv2d_2a_3x3 -> Conv2d_2b_3x3 p1 -> max-pool 3/2
    Conv2d_3b_1x1 -> Conv2d_4a_3x3 -> max-pool 3/2
    Mixed_5b, 5c, 5d (A) -> Mixed_6a (B) -> Mixed_6b..6e (C) -> Mixed_7a (D)
    Mixed_7b (E_1), Mixed_7c (E_2) -> global average pool = pool3 [B, 2048]

Input path (pytorch-fid's ``InceptionV3(resize_input=True, normalize_input=True)``): images in
[0, 1], any size, are resized to 299x299 with torch's bilinear ``align_corners=False`` sampling
(no antialiasing, as ``F.interpolate``'s default), then mapped to [-1, 1].

Parameter names are the torch module names (``Mixed_6b/branch7x7_2/conv``, ``.../bn``), so the
converter is a mechanical rename. Kernel sizes, strides and paddings are the architecture's; the
output width of every conv comes from the checkpoint (``meta["widths"]``). NHWC throughout;
convolutions run at full float32 precision (no TF32/bf16 passes on GPUs).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sair_jax.nets.layers import BatchNorm

BN_EPS = 1e-3  # torchvision's BasicConv2d
INPUT_SIZE = 299
POOL3_DIM = 2048

# Every conv of the network: name -> (kernel (kh, kw), stride, padding (ph, pw)).
_STEM = {
    "Conv2d_1a_3x3": ((3, 3), 2, (0, 0)),
    "Conv2d_2a_3x3": ((3, 3), 1, (0, 0)),
    "Conv2d_2b_3x3": ((3, 3), 1, (1, 1)),
    "Conv2d_3b_1x1": ((1, 1), 1, (0, 0)),
    "Conv2d_4a_3x3": ((3, 3), 1, (0, 0)),
}
_A = {"branch1x1": ((1, 1), 1, (0, 0)), "branch5x5_1": ((1, 1), 1, (0, 0)),
      "branch5x5_2": ((5, 5), 1, (2, 2)), "branch3x3dbl_1": ((1, 1), 1, (0, 0)),
      "branch3x3dbl_2": ((3, 3), 1, (1, 1)), "branch3x3dbl_3": ((3, 3), 1, (1, 1)),
      "branch_pool": ((1, 1), 1, (0, 0))}
_B = {"branch3x3": ((3, 3), 2, (0, 0)), "branch3x3dbl_1": ((1, 1), 1, (0, 0)),
      "branch3x3dbl_2": ((3, 3), 1, (1, 1)), "branch3x3dbl_3": ((3, 3), 2, (0, 0))}
_C = {"branch1x1": ((1, 1), 1, (0, 0)), "branch7x7_1": ((1, 1), 1, (0, 0)),
      "branch7x7_2": ((1, 7), 1, (0, 3)), "branch7x7_3": ((7, 1), 1, (3, 0)),
      "branch7x7dbl_1": ((1, 1), 1, (0, 0)), "branch7x7dbl_2": ((7, 1), 1, (3, 0)),
      "branch7x7dbl_3": ((1, 7), 1, (0, 3)), "branch7x7dbl_4": ((7, 1), 1, (3, 0)),
      "branch7x7dbl_5": ((1, 7), 1, (0, 3)), "branch_pool": ((1, 1), 1, (0, 0))}
_D = {"branch3x3_1": ((1, 1), 1, (0, 0)), "branch3x3_2": ((3, 3), 2, (0, 0)),
      "branch7x7x3_1": ((1, 1), 1, (0, 0)), "branch7x7x3_2": ((1, 7), 1, (0, 3)),
      "branch7x7x3_3": ((7, 1), 1, (3, 0)), "branch7x7x3_4": ((3, 3), 2, (0, 0))}
_E = {"branch1x1": ((1, 1), 1, (0, 0)), "branch3x3_1": ((1, 1), 1, (0, 0)),
      "branch3x3_2a": ((1, 3), 1, (0, 1)), "branch3x3_2b": ((3, 1), 1, (1, 0)),
      "branch3x3dbl_1": ((1, 1), 1, (0, 0)), "branch3x3dbl_2": ((3, 3), 1, (1, 1)),
      "branch3x3dbl_3a": ((1, 3), 1, (0, 1)), "branch3x3dbl_3b": ((3, 1), 1, (1, 0)),
      "branch_pool": ((1, 1), 1, (0, 0))}
# (block name, block type) in order.
BLOCKS = (("Mixed_5b", "A"), ("Mixed_5c", "A"), ("Mixed_5d", "A"), ("Mixed_6a", "B"),
          ("Mixed_6b", "C"), ("Mixed_6c", "C"), ("Mixed_6d", "C"), ("Mixed_6e", "C"),
          ("Mixed_7a", "D"), ("Mixed_7b", "E_1"), ("Mixed_7c", "E_2"))
_BLOCK_CONVS = {"A": _A, "B": _B, "C": _C, "D": _D, "E_1": _E, "E_2": _E}


def conv_specs() -> dict[str, tuple[tuple[int, int], int, tuple[int, int]]]:
  """Every conv of the network, keyed by its torch module path ('Mixed_6b.branch7x7_2')."""
  specs = dict(_STEM)
  for block, kind in BLOCKS:
    specs.update({f"{block}.{name}": spec for name, spec in _BLOCK_CONVS[kind].items()})
  return specs


class BasicConv2d(nn.Module):
  """torchvision's BasicConv2d: conv (no bias) -> eval BatchNorm(eps=1e-3) -> ReLU."""
  features: int
  kernel: tuple[int, int]
  stride: int = 1
  padding: tuple[int, int] = (0, 0)

  @nn.compact
  def __call__(self, x):  # [B, H, W, Cin]
    ph, pw = self.padding
    x = nn.Conv(self.features, self.kernel, strides=(self.stride, self.stride),
                padding=((ph, ph), (pw, pw)), use_bias=False,
                precision=jax.lax.Precision.HIGHEST, name="conv")(x)
    return nn.relu(BatchNorm(BN_EPS, name="bn")(x))  # [B, H', W', features]


def _avg_pool_exclude_pad(x):
  """3x3 stride-1 average pool, padding 1, the padding excluded from the count."""
  return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_s2(x):
  return nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")


class InceptionBlock(nn.Module):
  """One ``Mixed_*`` block of type A, B, C, D, E_1 or E_2 (the FID-patched variants)."""
  kind: str
  widths: tuple[tuple[str, int], ...]  # (conv name, output channels) of this block's convs

  @nn.compact
  def __call__(self, x):  # [B, H, W, Cin]
    width = dict(self.widths)
    specs = _BLOCK_CONVS[self.kind]

    def c(name, h):
      k, s, p = specs[name]
      return BasicConv2d(width[name], k, s, p, name=name)(h)

    if self.kind == "A":
      b1 = c("branch1x1", x)
      b5 = c("branch5x5_2", c("branch5x5_1", x))
      b3 = c("branch3x3dbl_3", c("branch3x3dbl_2", c("branch3x3dbl_1", x)))
      bp = c("branch_pool", _avg_pool_exclude_pad(x))
      outs = [b1, b5, b3, bp]
    elif self.kind == "B":
      b3 = c("branch3x3", x)
      bd = c("branch3x3dbl_3", c("branch3x3dbl_2", c("branch3x3dbl_1", x)))
      outs = [b3, bd, _max_pool_s2(x)]
    elif self.kind == "C":
      b1 = c("branch1x1", x)
      b7 = c("branch7x7_3", c("branch7x7_2", c("branch7x7_1", x)))
      bd = x
      for i in range(1, 6):
        bd = c(f"branch7x7dbl_{i}", bd)
      bp = c("branch_pool", _avg_pool_exclude_pad(x))
      outs = [b1, b7, bd, bp]
    elif self.kind == "D":
      b3 = c("branch3x3_2", c("branch3x3_1", x))
      b7 = x
      for i in range(1, 5):
        b7 = c(f"branch7x7x3_{i}", b7)
      outs = [b3, b7, _max_pool_s2(x)]
    else:  # E_1, E_2
      b1 = c("branch1x1", x)
      b3 = c("branch3x3_1", x)
      b3 = jnp.concatenate([c("branch3x3_2a", b3), c("branch3x3_2b", b3)], axis=-1)
      bd = c("branch3x3dbl_2", c("branch3x3dbl_1", x))
      bd = jnp.concatenate([c("branch3x3dbl_3a", bd), c("branch3x3dbl_3b", bd)], axis=-1)
      if self.kind == "E_1":
        pooled = _avg_pool_exclude_pad(x)
      else:  # pytorch-fid: the TF graph max-pools here
        pooled = nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))
      outs = [b1, b3, bd, c("branch_pool", pooled)]
    return jnp.concatenate(outs, axis=-1)  # [B, H', W', sum of branch widths]


class InceptionV3(nn.Module):
  """FID-Inception (pytorch-fid's ``InceptionV3`` with ``use_fid_inception=True``) from the
  normalised 299x299 input to the pool3 features. The Flax module only: a loaded checkpoint,
  with its parameters and jitted features, is :class:`sair_jax.metrics.fid.FIDInception`."""
  widths: tuple[tuple[str, int], ...]  # (torch conv path, output channels) for every conv

  @nn.compact
  def __call__(self, x):  # [B, 299, 299, 3] in [-1, 1]
    width = dict(self.widths)

    def stem(name, h):
      k, s, p = _STEM[name]
      return BasicConv2d(width[name], k, s, p, name=name)(h)

    x = stem("Conv2d_1a_3x3", x)  # [B, 149, 149, 32]
    x = stem("Conv2d_2a_3x3", x)  # [B, 147, 147, 32]
    x = stem("Conv2d_2b_3x3", x)  # [B, 147, 147, 64]
    x = _max_pool_s2(x)  # [B, 73, 73, 64]
    x = stem("Conv2d_3b_1x1", x)  # [B, 73, 73, 80]
    x = stem("Conv2d_4a_3x3", x)  # [B, 71, 71, 192]
    x = _max_pool_s2(x)  # [B, 35, 35, 192]
    for block, kind in BLOCKS:  # 35 -> (6a) 17 -> (7a) 8
      prefix = block + "."
      bw = tuple((k[len(prefix):], v) for k, v in self.widths if k.startswith(prefix))
      x = InceptionBlock(kind, bw, name=block)(x)
    return jnp.mean(x, axis=(1, 2))  # [B, 2048]


def bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
  """[n_out, n_in] float32 matrix of torch's bilinear ``align_corners=False`` resampling.

  Output sample ``o`` reads input coordinate ``(o + 0.5) * n_in / n_out - 0.5``, clamped below
  at 0; its two neighbours ``floor`` and ``floor + 1`` (clamped to the last sample) get weights
  ``1 - t`` and ``t``. No antialiasing, also when shrinking (torch's default).
  """
  src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
  src = np.maximum(src, 0.0)
  i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
  i1 = np.minimum(i0 + 1, n_in - 1)
  t = src - i0
  m = np.zeros((n_out, n_in), np.float64)
  rows = np.arange(n_out)
  np.add.at(m, (rows, i0), 1.0 - t)
  np.add.at(m, (rows, i1), t)
  return m.astype(np.float32)


def resize_bilinear_torch(x, size: Sequence[int]):
  """torch ``F.interpolate(x, size, mode='bilinear', align_corners=False)`` on NHWC ``x``."""
  _, h, w, _ = x.shape  # [B, H, W, C]
  mh = jnp.asarray(bilinear_matrix(h, size[0]))  # [H', H]
  mw = jnp.asarray(bilinear_matrix(w, size[1]))  # [W', W]
  hi = jax.lax.Precision.HIGHEST
  x = jnp.einsum("oh,bhwc->bowc", mh, x, precision=hi)  # [B, H', W, C]
  return jnp.einsum("pw,bowc->bopc", mw, x, precision=hi)  # [B, H', W', C]


def preprocess(images01):
  """pytorch-fid's input path: [B, H, W, 3] in [0, 1] -> [B, 299, 299, 3] in [-1, 1]."""
  x = resize_bilinear_torch(images01.astype(jnp.float32), (INPUT_SIZE, INPUT_SIZE))
  return 2.0 * x - 1.0
