"""e4e inversion encoder (encoder4editing's ``Encoder4Editing``, IR-SE backbone) in Flax.

Maps a face [B, 256, 256, 3] in [-1, 1] to a StyleGAN2 W+ code [B, n_styles, w_dim]
(``latent_avg`` included, as e4e's pSp wrapper adds it). Layout::

    input_layer: conv 3x3 -> BN -> PReLU
    body: bottleneck_IR_SE x N (4 stages, the first block of each with stride 2)
      res_layer: BN -> conv 3x3 -> PReLU -> conv 3x3 stride s -> BN -> SE
      shortcut_layer: 1x1 conv stride s -> BN when the width changes, else subsampling
    taps after body blocks 6, 20, 23: c1 (1/4), c2 (1/8), c3 (1/16 of the input)
    w0 = styles[0](c3); style i >= 1 adds a delta computed from
      c3 (i < coarse), p2 = up(c3) + latlayer1(c2) (i < middle), p1 = up(p2) + latlayer2(c1)
    styles[i]: (conv 3x3 stride 2 -> LeakyReLU 0.01) down to 1x1 -> EqualLinear

    w = [w0, w0 + delta_1, ..., w0 + delta_{n-1}] + latent_avg

At inference e4e's progressive stage is ``Inference``: every delta is added. ``up`` is
bilinear with ``align_corners=True`` to the lateral map's size (e4e's ``_upsample_add``).
Parameter names follow the torch names with '.' replaced by '_' (``body_3/res_layer_5/fc1``,
``styles_7/convs_10``), so ``converters/e4e.py`` is a plain name table. Widths, the number of
blocks and styles and the W dimension come from the checkpoint: :class:`Arch`, in its
``meta.json``.

Usage::

    E = e4e.load("checkpoints/e4e-ffhq")
    w_plus = E.encode(images)                 # [B, 256, 256, 3] in [-1, 1] -> [B, 18, 512]
    w_plus = E.encode_faces(faces)            # [B, H, W, 3] in [0, 1], any resolution
    e4e.apply(E.params, E.arch, images)       # the same, pure, for use inside jit
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from sair_jax.io import checkpoint
from sair_jax.nets import layers
from sair_jax.nets.loaded import LoadedNetwork
from sair_jax.nets.layers import BatchNorm, PReLU, conv, interpolate

KIND = "e4e_encoder"
LEAKY_SLOPE = 0.01  # torch nn.LeakyReLU() default


class SEModule(nn.Module):
  """Squeeze-excitation: global average -> fc1 (1x1, no bias) -> ReLU -> fc2 -> sigmoid gate."""
  hidden: int

  @nn.compact
  def __call__(self, x):  # [B, H, W, C]
    s = jnp.mean(x, axis=(1, 2))  # [B, C]
    s = nn.relu(nn.Dense(self.hidden, use_bias=False, name="fc1")(s))  # [B, C/16]
    s = nn.sigmoid(nn.Dense(x.shape[-1], use_bias=False, name="fc2")(s))  # [B, C]
    return x * s[:, None, None, :]


class BottleneckIRSE(nn.Module):
  """``bottleneck_IR_SE``: pre-activation residual branch with squeeze-excitation."""
  depth: int
  stride: int
  se_hidden: int
  eps: float = 1e-5

  @nn.compact
  def __call__(self, x):  # [B, H, W, Cin]
    if x.shape[-1] == self.depth:
      shortcut = x[:, ::self.stride, ::self.stride, :]  # MaxPool2d(kernel 1, stride s)
    else:
      shortcut = conv(self.depth, 1, self.stride, 0, name="shortcut_layer_0")(x)
      shortcut = BatchNorm(self.eps, name="shortcut_layer_1")(shortcut)
    r = BatchNorm(self.eps, name="res_layer_0")(x)
    r = conv(self.depth, 3, 1, 1, name="res_layer_1")(r)  # [B, H, W, D]
    r = PReLU(name="res_layer_2")(r)
    r = conv(self.depth, 3, self.stride, 1, name="res_layer_3")(r)  # [B, H/s, W/s, D]
    r = BatchNorm(self.eps, name="res_layer_4")(r)
    r = SEModule(self.se_hidden, name="res_layer_5")(r)
    return r + shortcut


class EqualLinear(nn.Module):
  """StyleGAN2's equalised linear layer (lr_mul = 1, no activation): the stored weight is
  scaled by 1/sqrt(fan_in) at run time."""
  features: int

  @nn.compact
  def __call__(self, x):  # [B, I]
    fan_in = x.shape[-1]
    kernel = self.param("kernel", nn.initializers.normal(1.0), (fan_in, self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    return x @ (kernel * (1.0 / math.sqrt(fan_in))) + bias  # [B, O]


class GradualStyleBlock(nn.Module):
  """Strided 3x3 convs (bias, LeakyReLU) down to 1x1, then an EqualLinear to one style."""
  channels: int
  n_convs: int
  w_dim: int

  @nn.compact
  def __call__(self, x):  # [B, S, S, C], S = 2 ** n_convs
    for j in range(self.n_convs):
      # torch Sequential indices: conv at 2j, LeakyReLU at 2j + 1.
      x = conv(self.channels, 3, 2, 1, use_bias=True, name=f"convs_{2 * j}")(x)
      x = nn.leaky_relu(x, LEAKY_SLOPE)
    if x.shape[1:3] != (1, 1):
      raise ValueError(f"style block ends at {x.shape[1]}x{x.shape[2]}, not 1x1: "
                       "wrong input resolution for this encoder")
    x = x.reshape(x.shape[0], self.channels)  # [B, C]
    return EqualLinear(self.w_dim, name="linear")(x)  # [B, w_dim]


class Encoder4Editing(nn.Module):
  """The e4e encoder plus ``latent_avg``: [B, S, S, 3] in [-1, 1] -> W+ [B, n_styles, w_dim]."""
  stem_width: int
  blocks: Sequence[Sequence[int]]  # per body block: (depth, stride, se_hidden)
  style_convs: Sequence[int]  # per style: number of stride-2 convs
  style_channels: int
  w_dim: int
  taps: Sequence[int] = (6, 20, 23)  # body blocks whose outputs are c1, c2, c3
  coarse: int = 3  # styles [0, coarse) read c3
  middle: int = 7  # styles [coarse, middle) read p2, the rest p1
  eps: float = 1e-5

  @nn.compact
  def __call__(self, x):  # [B, S, S, 3]
    x = conv(self.stem_width, 3, 1, 1, name="input_layer_0")(x)  # [B, S, S, 64]
    x = BatchNorm(self.eps, name="input_layer_1")(x)
    x = PReLU(name="input_layer_2")(x)
    taps = {}
    for i, (depth, stride, se_hidden) in enumerate(self.blocks):
      x = BottleneckIRSE(depth, stride, se_hidden, self.eps, name=f"body_{i}")(x)
      taps[i] = x
    # c1 [B, S/4, S/4, 128], c2 [B, S/8, S/8, 256], c3 [B, S/16, S/16, 512] (official widths)
    c1, c2, c3 = (taps[i] for i in self.taps)

    n_styles = len(self.style_convs)
    styles = [GradualStyleBlock(self.style_channels, n, self.w_dim, name=f"styles_{i}")
              for i, n in enumerate(self.style_convs)]
    w0 = styles[0](c3)  # [B, w_dim]
    deltas = [jnp.zeros_like(w0)]
    features = c3
    for i in range(1, n_styles):
      if i == self.coarse:  # FPN middle features
        lateral = conv(c3.shape[-1], 1, use_bias=True, name="latlayer1")(c2)
        p2 = interpolate(c3, lateral.shape[1:3], "bilinear", align_corners=True) + lateral
        features = p2
      elif i == self.middle:  # FPN fine features
        lateral = conv(c3.shape[-1], 1, use_bias=True, name="latlayer2")(c1)
        features = interpolate(p2, lateral.shape[1:3], "bilinear", align_corners=True) + lateral
      deltas.append(styles[i](features))
    w = w0[:, None, :] + jnp.stack(deltas, axis=1)  # [B, n_styles, w_dim]
    latent_avg = self.param("latent_avg", nn.initializers.zeros, (n_styles, self.w_dim))
    return w + latent_avg[None]


@dataclasses.dataclass(frozen=True)
class Arch:
  """The encoder's shape (hashable), read from the checkpoint by the converter, in meta.json."""
  stem_width: int
  blocks: tuple[tuple[int, ...], ...]  # (depth, stride, SE hidden width) of each IR-SE block
  style_convs: tuple[int, ...]  # stride-2 convolutions of each map2style head
  style_channels: int
  w_dim: int
  taps: tuple[int, ...]  # body blocks whose outputs feed c1, c2, c3
  coarse: int  # styles computed from c3
  middle: int  # styles computed from p2 (the rest from p1)
  bn_eps: float = 1e-5
  input_size: int = 256

  @property
  def n_styles(self) -> int:
    return len(self.style_convs)

  def to_meta(self) -> dict:
    meta = dataclasses.asdict(self)
    meta.update(blocks=[list(b) for b in self.blocks], style_convs=list(self.style_convs),
                taps=list(self.taps), n_styles=self.n_styles)
    return meta

  @classmethod
  def from_meta(cls, meta: dict) -> "Arch":
    """From a ``meta.json`` dict (a missing field raises KeyError naming it)."""
    ints = lambda v: tuple(int(x) for x in v)
    return cls(stem_width=int(meta["stem_width"]), blocks=tuple(ints(b) for b in meta["blocks"]),
               style_convs=ints(meta["style_convs"]), style_channels=int(meta["style_channels"]),
               w_dim=int(meta["w_dim"]), taps=ints(meta["taps"]), coarse=int(meta["coarse"]),
               middle=int(meta["middle"]), bn_eps=float(meta["bn_eps"]),
               input_size=int(meta["input_size"]))


def build(arch: Arch) -> Encoder4Editing:
  """The Flax module of an :class:`Arch`."""
  return Encoder4Editing(stem_width=arch.stem_width, blocks=arch.blocks,
                         style_convs=arch.style_convs, style_channels=arch.style_channels,
                         w_dim=arch.w_dim, taps=arch.taps, coarse=arch.coarse,
                         middle=arch.middle, eps=arch.bn_eps)


def param_shapes(arch: Arch) -> Any:
  """Shape tree (tuples) of the parameters of ``arch``, without allocating them."""
  return layers.param_shapes(build(arch), arch.input_size)


def apply(params: Any, arch: Arch, images):
  """W+ codes [B, n_styles, w_dim] of images [B, S, S, 3] in [-1, 1] (pure; use inside jit)."""
  size = arch.input_size
  if images.ndim != 4 or tuple(images.shape[1:]) != (size, size, 3):
    raise ValueError(f"e4e expects images [B, {size}, {size}, 3], got {tuple(images.shape)}")
  return build(arch).apply({"params": params}, images)


def preprocess(faces, size: int = 256):
  """Faces [B, H, W, 3] in [0, 1] at any resolution -> e4e input [B, size, size, 3] in [-1, 1]
  (e4e's own transform: bilinear resize to 256, antialiased like PIL when shrinking,
  then Normalize(0.5, 0.5))."""
  x = jax.image.resize(faces, (faces.shape[0], size, size, faces.shape[-1]), "linear")
  return x * 2.0 - 1.0


class E4E(LoadedNetwork):
  """A loaded e4e encoder: ``params`` (device arrays), its :class:`Arch`, jitted entry points."""

  def __init__(self, params: Any, arch: Arch):
    super().__init__(params, arch)
    self.module = build(arch)
    self._encode = jax.jit(self.apply_fn)
    self._encode_faces = jax.jit(self.apply_faces)

  @property
  def n_styles(self) -> int:
    return self.arch.n_styles

  @property
  def w_dim(self) -> int:
    return self.arch.w_dim

  def apply_fn(self, params: Any, images):
    """Pure forward ``(params, images [B, 256, 256, 3]) -> [B, n_styles, w_dim]``."""
    return apply(params, self.arch, images)

  def apply_faces(self, params: Any, faces):
    """Pure ``(params, faces [B, H, W, 3] in [0, 1]) -> [B, n_styles, w_dim]``."""
    return apply(params, self.arch, preprocess(faces, self.arch.input_size))

  def encode(self, images):
    """W+ codes [B, n_styles, w_dim] of images [B, 256, 256, 3] in [-1, 1] (jitted)."""
    return self._encode(self.params, images)

  def encode_faces(self, faces):
    """W+ codes of faces [B, H, W, 3] in [0, 1] at any resolution (jitted)."""
    return self._encode_faces(self.params, faces)


def load(dst: str) -> E4E:
  """Loads a checkpoint written by ``python -m converters.e4e`` (one-line CheckpointError)."""
  return E4E(*checkpoint.load_network(dst, KIND, Arch, param_shapes))
