"""StyleGAN2 generator (config-f and any other width/resolution) as Flax modules.

Module names follow NVlabs' StyleGAN2 (mapping -> synthesis layer -> ToRGB -> block -> synthesis
network); the converter in ``converters/stylegan2.py`` maps rosinality's ``g_ema`` keys onto them.

Parameter tree (raw equalised-lr weights; the ``1/sqrt(fan_in)`` scales are applied at run time,
exactly as the original does, so conversion is a pure transpose)::

    mapping/fc{i}/{weight [in, out], bias [out]}
    synthesis/const [4, 4, C4]
    synthesis/b{res}/{conv0 (res > 4), conv1, torgb}/
        affine/{weight [w_dim, I], bias [I]}, weight [k, k, I, O], bias [O], noise_strength []

Buffers (not optimised, never differentiated) live beside the parameters::

    buffers/fir [4, 4]                 the upsampling filter, gain 4 included
    buffers/noise/{name} [H, W]        the checkpoint's constant noise inputs
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from typing import Any, Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sair_jax.io import checkpoint
from sair_jax.nets import ops
from sair_jax.nets.loaded import LoadedNetwork

KIND = "stylegan2"


# --------------------------------------------------------------------------------------------
# Architecture
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Arch:
  """Everything about the network's shape; read from the checkpoint, stored in meta.json."""
  resolution: int  # output side, a power of two >= 8
  w_dim: int  # style dimension (also z dimension, as in rosinality's port)
  n_mlp: int  # mapping depth
  channels: tuple[int, ...]  # channels at 4, 8, ..., resolution
  lr_mlp: float = 0.01  # mapping lr multiplier (not stored in the .pt; rosinality's default)

  @property
  def log_res(self) -> int:
    return int(math.log2(self.resolution))

  @property
  def n_latent(self) -> int:
    return 2 * self.log_res - 2

  @property
  def z_dim(self) -> int:
    return self.w_dim

  def channels_at(self, res: int) -> int:
    return self.channels[int(math.log2(res)) - 2]

  def noise_layers(self) -> list[tuple[str, int]]:
    """(name, side) of every noise input in synthesis order: b4/conv1, b8/conv0, b8/conv1, ..."""
    layers = [("b4_conv1", 4)]
    for res in self.block_resolutions()[1:]:
      layers += [(f"b{res}_conv0", res), (f"b{res}_conv1", res)]
    return layers

  def block_resolutions(self) -> list[int]:
    return [2**i for i in range(2, self.log_res + 1)]

  def to_meta(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_meta(cls, meta: dict) -> "Arch":
    return cls(resolution=int(meta["resolution"]), w_dim=int(meta["w_dim"]),
               n_mlp=int(meta["n_mlp"]), channels=tuple(int(c) for c in meta["channels"]),
               lr_mlp=float(meta["lr_mlp"]))


# --------------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------------


class EqualLinear(nn.Module):
  """Equalised-learning-rate dense layer: ``x @ (W * lr_mul / sqrt(in)) + b * lr_mul``."""
  features: int
  lr_mul: float = 1.0
  bias_init: float = 0.0
  activation: bool = False  # leaky ReLU with gain sqrt(2) after the bias

  @nn.compact
  def __call__(self, x):  # [B, in] -> [B, features]
    fan_in = x.shape[-1]
    weight = self.param("weight", nn.initializers.normal(1.0 / self.lr_mul),
                        (fan_in, self.features))
    bias = self.param("bias", nn.initializers.constant(self.bias_init), (self.features,))
    y = x @ (weight * (self.lr_mul / math.sqrt(fan_in)))
    b = bias * self.lr_mul
    return ops.lrelu_gain(y, b) if self.activation else y + b


class MappingNetwork(nn.Module):
  """z -> w: pixel norm, then ``n_mlp`` equalised linear layers with leaky ReLU."""
  w_dim: int
  n_mlp: int
  lr_mul: float

  @nn.compact
  def __call__(self, z):  # [B, z_dim] -> [B, w_dim]
    x = ops.normalize_2nd_moment(z)
    for i in range(self.n_mlp):
      x = EqualLinear(self.w_dim, lr_mul=self.lr_mul, activation=True, name=f"fc{i}")(x)
    return x


class SynthesisLayer(nn.Module):
  """Modulated 3x3 conv (optionally 2x up), noise injection, bias + leaky ReLU (StyledConv)."""
  out_channels: int
  up: bool = False
  kernel_size: int = 3
  dtype: Any = jnp.float32
  upconv: str = "separable"  # form of the 2x up layer, see ops.modulated_conv2d

  @nn.compact
  def __call__(self, x, w, noise, fir):
    # x [B, H, W, I], w [B, w_dim], noise [B or 1, H', W'] -> [B, H', W', O]
    in_channels = x.shape[-1]
    k = self.kernel_size
    styles = EqualLinear(in_channels, bias_init=1.0, name="affine")(w)  # [B, I]
    weight = self.param("weight", nn.initializers.normal(1.0), (k, k, in_channels,
                                                                self.out_channels))
    strength = self.param("noise_strength", nn.initializers.zeros, ())
    bias = self.param("bias", nn.initializers.zeros, (self.out_channels,))
    weight = weight * (1.0 / math.sqrt(in_channels * k * k))
    x = ops.modulated_conv2d(x, weight, styles, demodulate=True,
                             up_fir=fir if self.up else None, upconv=self.upconv,
                             dtype=self.dtype)
    x = x + (strength * noise[..., None]).astype(x.dtype)
    return ops.lrelu_gain(x, bias)


class ToRGBLayer(nn.Module):
  """Modulated 1x1 conv to RGB without demodulation, plus bias."""
  out_channels: int = 3
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, w):  # x [B, H, W, I], w [B, w_dim] -> [B, H, W, 3] float32
    in_channels = x.shape[-1]
    styles = EqualLinear(in_channels, bias_init=1.0, name="affine")(w)
    weight = self.param("weight", nn.initializers.normal(1.0), (1, 1, in_channels,
                                                                self.out_channels))
    bias = self.param("bias", nn.initializers.zeros, (self.out_channels,))
    weight = weight * (1.0 / math.sqrt(in_channels))
    y = ops.modulated_conv2d(x, weight, styles, demodulate=False, dtype=self.dtype)
    return y.astype(jnp.float32) + bias


class SynthesisBlock(nn.Module):
  """One resolution: [conv0 (2x up)], conv1, ToRGB added to the upsampled skip image."""
  res: int
  out_channels: int
  dtype: Any = jnp.float32
  upconv: str = "separable"

  @nn.compact
  def __call__(self, x, img, ws, noises, fir):
    # x [B, H/2, W/2, C] (or [B, 4, 4, C] at res 4), img [B, H/2, W/2, 3] or None,
    # ws [B, 3 or 2, w_dim] (conv0, conv1, torgb), noises: one [B or 1, H, W] per conv.
    i = 0
    if self.res > 4:
      x = SynthesisLayer(self.out_channels, up=True, dtype=self.dtype, upconv=self.upconv,
                         name="conv0")(
          x, ws[:, 0], noises[0], fir)
      i = 1
    x = SynthesisLayer(self.out_channels, dtype=self.dtype, name="conv1")(
        x, ws[:, i], noises[i], fir)
    y = ToRGBLayer(dtype=self.dtype, name="torgb")(x, ws[:, i + 1])
    if img is not None:
      y = y + ops.upsample2x_fir(img, fir)
    return x, y


class SynthesisNetwork(nn.Module):
  """W+ -> image: constant input, one block per resolution, ToRGB skip connections."""
  arch: Arch
  dtype: Any = jnp.float32
  remat: bool = False  # rematerialise every block in the backward pass (saves memory)
  upconv: str = "separable"  # 'separable' | 'folded': form of the 2x up layers (same result)

  @nn.compact
  def __call__(self, ws, noises, fir):
    # ws [B, n_latent, w_dim], noises: tuple of [B or 1, s, s] in arch.noise_layers() order,
    # fir [f, f] -> [B, res, res, 3] float32.
    arch = self.arch
    chex.assert_shape(ws, (None, arch.n_latent, arch.w_dim))
    batch = ws.shape[0]
    const = self.param("const", nn.initializers.normal(1.0), (4, 4, arch.channels_at(4)))
    x = jnp.broadcast_to(const.astype(self.dtype), (batch,) + const.shape)  # [B, 4, 4, C]
    block_cls = nn.remat(SynthesisBlock) if self.remat else SynthesisBlock
    img = None
    for res in arch.block_resolutions():
      if res == 4:  # conv1 uses w[0], torgb w[1]
        block_ws, block_noise = ws[:, 0:2], noises[0:1]
      else:  # block k (res = 8 * 2^k): conv0 w[2k+1], conv1 w[2k+2], torgb w[2k+3]
        j = 2 * int(math.log2(res)) - 5
        block_ws, block_noise = ws[:, j:j + 3], noises[j:j + 2]
      x, img = block_cls(res, arch.channels_at(res), dtype=self.dtype, upconv=self.upconv,
                         name=f"b{res}")(
          x, img, block_ws, tuple(block_noise), fir)
    return img


# --------------------------------------------------------------------------------------------
# Pure functions over (params, buffers)
# --------------------------------------------------------------------------------------------


def mapping_fn(params: dict, arch: Arch, z: jax.Array) -> jax.Array:
  """[B, z_dim] -> [B, w_dim] with the parameter tree ``params['mapping']``."""
  net = MappingNetwork(arch.w_dim, arch.n_mlp, arch.lr_mlp)
  return net.apply({"params": params["mapping"]}, z)


def make_noise(arch: Arch, buffers: dict, mode: str, batch: int,
               rng: jax.Array | None = None) -> tuple[jax.Array, ...]:
  """Noise inputs for :func:`synthesis_fn`.

  Args:
    mode: ``"const"`` (the checkpoint's fixed buffers, shared by the batch), ``"random"`` (fresh
      N(0, 1) per image and layer from ``rng``) or ``"zero"``.
  Returns:
    one array per noise layer: [1, s, s] for const/zero, [B, s, s] for random.
  """
  layers = arch.noise_layers()
  if mode == "const":
    return tuple(buffers["noise"][name][None] for name, _ in layers)
  if mode == "zero":
    return tuple(jnp.zeros((1, s, s), jnp.float32) for _, s in layers)
  if mode == "random":
    if rng is None:
      raise ValueError("noise='random' needs an rng key")
    keys = jax.random.split(rng, len(layers))
    return tuple(jax.random.normal(k, (batch, s, s), jnp.float32)
                 for k, (_, s) in zip(keys, layers))
  raise ValueError(f"unknown noise mode {mode!r}: expected 'const', 'random' or 'zero'")


def synthesis_fn(params: dict, buffers: dict, arch: Arch, wplus: jax.Array,
                 noise: str | Sequence[jax.Array] = "const", rng: jax.Array | None = None,
                 dtype=jnp.float32, remat: bool = False,
                 upconv: str = "separable") -> jax.Array:
  """W+ [B, n_latent, w_dim] -> images [B, H, W, 3] float32, ≈[-1, 1]. Pure; jit/vmap/grad-safe.

  ``noise`` is a mode for :func:`make_noise` or the noise arrays themselves. ``dtype``,
  ``remat`` and ``upconv`` choose how it is computed, never what: see
  :class:`SynthesisNetwork` and ``ops.modulated_conv2d``.
  """
  if isinstance(noise, str):
    noise = make_noise(arch, buffers, noise, wplus.shape[0], rng)
  net = SynthesisNetwork(arch, dtype=dtype, remat=remat, upconv=upconv)
  return net.apply({"params": params["synthesis"]}, wplus, tuple(noise), buffers["fir"])


def synthesis_conv_flops(arch: Arch) -> int:
  """FLOPs (2 per multiply-add) of the synthesis convolutions for one image, forward.

  The arithmetic the network needs: every 3x3 conv, every 2x up layer as a 3x3 transposed conv
  at its input size (k*k multiply-adds per input pixel, no inserted zeros), every 1x1 ToRGB.
  Elementwise work (modulation, FIR, noise, activations) is left out. The gradient to W+ adds
  about as much again (activation gradients only: the weights are frozen).
  """
  macs = 0
  for res in arch.block_resolutions():
    c = arch.channels_at(res)
    if res > 4:
      macs += (res // 2) ** 2 * 9 * arch.channels_at(res // 2) * c  # conv0, 2x up
    macs += res * res * 9 * c * c + res * res * c * 3  # conv1, torgb
  return 2 * macs


def truncate(w: jax.Array, w_avg: jax.Array, psi: float) -> jax.Array:
  """Truncation trick: ``w_avg + psi * (w - w_avg)`` (any leading shape)."""
  return w_avg + psi * (w - w_avg)


@functools.partial(jax.jit, static_argnums=0)  # one compiled program, not hundreds of eager ops
def init_params(arch: Arch, rng: jax.Array) -> tuple[dict, dict]:
  """Random parameters and buffers of ``arch`` (for tests, benchmarks and the smoke config)."""
  k_map, k_syn, k_noise = jax.random.split(rng, 3)
  z = jnp.zeros((1, arch.z_dim))
  mapping = MappingNetwork(arch.w_dim, arch.n_mlp, arch.lr_mlp).init(k_map, z)["params"]
  fir = make_fir([1.0, 3.0, 3.0, 1.0], gain=4.0)
  zeros_noise = tuple(jnp.zeros((1, s, s)) for _, s in arch.noise_layers())
  ws = jnp.zeros((1, arch.n_latent, arch.w_dim))
  synthesis = SynthesisNetwork(arch).init(k_syn, ws, zeros_noise, fir)["params"]
  keys = jax.random.split(k_noise, len(arch.noise_layers()))
  noise = {name: jax.random.normal(k, (s, s)) for k, (name, s) in zip(keys, arch.noise_layers())}
  return {"mapping": mapping, "synthesis": synthesis}, {"fir": fir, "noise": noise}


def make_fir(taps: Sequence[float], gain: float = 1.0) -> jax.Array:
  """Separable 2-D FIR from 1-D taps, normalised to sum to ``gain`` (rosinality's make_kernel)."""
  t = jnp.asarray(taps, jnp.float32)
  k = jnp.outer(t, t)
  return k / jnp.sum(k) * gain


# --------------------------------------------------------------------------------------------
# Loaded generator
# --------------------------------------------------------------------------------------------


class Generator(LoadedNetwork):
  """A converted generator: parameters, buffers, ``w_avg`` and jitted entry points.

  Attributes:
    params: {'mapping': ..., 'synthesis': ...} parameter tree.
    buffers: {'fir': [f, f], 'noise': {name: [s, s]}}.
    arch: :class:`Arch`.
    w_avg: [w_dim] average latent (truncation centre, a common starting point).
  """

  def __init__(self, params: dict, buffers: dict, arch: Arch, w_avg: jax.Array):
    super().__init__(params, arch)
    self.buffers = jax.tree_util.tree_map(jnp.asarray, buffers)
    self.w_avg = jnp.asarray(w_avg)
    self._mapping = self.jit_with_arch(mapping_fn)
    self._synthesis = jax.jit(
        lambda p, b, ws, rng, mode: synthesis_fn(p, b, arch, ws, mode, rng),
        static_argnums=(4,))

  resolution = property(lambda self: self.arch.resolution)
  n_latent = property(lambda self: self.arch.n_latent)
  w_dim = property(lambda self: self.arch.w_dim)
  z_dim = property(lambda self: self.arch.z_dim)

  def mapping(self, z: jax.Array, truncation: float = 1.0) -> jax.Array:
    """[B, z_dim] -> [B, w_dim], optionally truncated toward ``w_avg``."""
    w = self._mapping(self.params, jnp.asarray(z, jnp.float32))
    return w if truncation == 1.0 else truncate(w, self.w_avg, truncation)

  def synthesis(self, wplus: jax.Array, noise: str = "const",
                rng: jax.Array | None = None) -> jax.Array:
    """[B, n_latent, w_dim] -> [B, H, W, 3] float32 (≈[-1, 1]); noise 'const' | 'random' | 'zero'."""
    wplus = jnp.asarray(wplus, jnp.float32)
    if wplus.ndim != 3 or wplus.shape[1:] != (self.n_latent, self.w_dim):
      raise ValueError(f"wplus must be [B, {self.n_latent}, {self.w_dim}], got {wplus.shape}")
    if noise == "random" and rng is None:
      raise ValueError("noise='random' needs an rng key")
    return self._synthesis(self.params, self.buffers, wplus, rng, noise)

  def to_wplus(self, w: jax.Array) -> jax.Array:
    """[B, w_dim] -> [B, n_latent, w_dim] (the same w for every layer)."""
    return jnp.repeat(jnp.asarray(w)[:, None], self.n_latent, axis=1)


def load(dst: str | os.PathLike) -> Generator:
  """Loads a checkpoint written by ``python -m converters.stylegan2``.

  Raises:
    checkpoint.CheckpointError: one line naming ``dst`` and what is wrong.
  """
  tree, meta = checkpoint.load(dst, KIND)
  arch = checkpoint.arch_from_meta(dst, Arch, meta.get("arch", {}))
  params, buffers = init_shapes(arch)
  checkpoint.check_shapes(os.fspath(dst), {"params": tree.get("params"),
                                           "buffers": tree.get("buffers"),
                                           "w_avg": tree.get("w_avg")},
                          {"params": params, "buffers": buffers, "w_avg": (arch.w_dim,)})
  return Generator(tree["params"], tree["buffers"], arch, tree["w_avg"])


def init_shapes(arch: Arch) -> tuple[Any, Any]:
  """Shape trees (tuples at the leaves) of the parameters and buffers of ``arch``."""
  shapes = jax.eval_shape(lambda: init_params(arch, jax.random.PRNGKey(0)))
  to_shape = lambda s: tuple(s.shape)
  return (jax.tree_util.tree_map(to_shape, shapes[0]),
          jax.tree_util.tree_map(to_shape, shapes[1]))


def save(dst: str | os.PathLike, params: dict, buffers: dict, arch: Arch, w_avg,
         source: str = "", w_avg_source: str = "") -> None:
  """Writes a generator checkpoint (used by the converter and by tests)."""
  checkpoint.save(dst, {"params": params, "buffers": buffers, "w_avg": np.asarray(w_avg)},
                  {"arch": arch.to_meta(), "source": source, "w_avg_source": w_avg_source},
                  KIND)
