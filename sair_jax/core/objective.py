"""The SAIR objective for ONE image (paper Eq. 8, or the authors' script), as a pure function.

:func:`make_objective` closes over the *static* choices (weights, preset switches, degradation,
network architectures) and returns ``loss(w, params, target, key) -> (total, terms)`` where

* ``w`` [L, D] is the image's W+ code,
* ``params`` is the pytree of frozen network parameters ``{'g_params', 'g_buffers',
  'arcface'}`` (an argument, never a closed-over constant, so XLA does not constant-fold
  hundreds of MB of weights),
* ``target`` is this image's data (:class:`Target`),
* ``key`` is a PRNG key (fresh generator noise per step in the ``official`` preset).

The solver vmaps it over the batch, so each image has its own loss and gradient.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp

from sair_jax.core import backend_defaults, degradation, losses
from sair_jax.nets import arcface, layers, stylegan2

TERMS = ("fidelity", "identity", "prior", "cross", "expression", "histogram", "temporal")


@flax.struct.dataclass
class Target:
  """Everything one image's loss needs besides ``w`` (leading batch axis when batched)."""
  lq: jax.Array  # [h, w, 3] degraded input Y in [0, 1]
  ref_embedding: jax.Array  # [E] ArcFace features of the reference Z
  w_ref: jax.Array  # [L, D] reference latent w_z (prior centre; also the initial w)
  direction: jax.Array  # [L, D] expression direction Δw_e (unit rows), zeros if none
  expression_on: jax.Array  # [] 1.0 where an expression is requested, else 0.0
  mask: jax.Array  # [S, S] face mask of the generated image at the histogram resolution
  lq_hist: jax.Array  # [S, S, 3] the LQ upsampled to the histogram resolution, [0, 1]
  histogram_on: jax.Array  # [] 1.0 once the histogram phase has started, else 0.0
  w_neighbour: jax.Array  # [L, D] a solved neighbouring frame's W+ (video), zeros if none
  temporal_scale: jax.Array  # [] the temporal term's scale: 1.0 where the image has a solved
  #   neighbour (less for a re-anchored video frame, pipeline/temporal.py), else 0.0


@dataclasses.dataclass(frozen=True)
class ObjectiveSpec:
  """The static part of the objective (hashable; read from the config by the solver)."""
  g_arch: stylegan2.Arch
  arcface_arch: arcface.Arch
  factor: int  # generator resolution / LQ resolution
  weights: tuple  # ((term, weight), ...) for the terms in TERMS
  fidelity_norm: str = "mean"  # L_d reduction: 'mean' (authors' script) | 'sum' (Eq. 3's ||·||²)
  fidelity_clamp: float | None = None  # the authors clamp the per-image MSE below at 1e-4
  jpeg_quality: float | None = None  # differentiable JPEG inside D
  blur_sigma: float | None = None  # Gaussian blur inside D (x8 presets)
  noise: str = "const"  # generator noise: 'const' | 'random' (fresh every step) | 'zero'
  output: str = "clip"  # [-1, 1] -> [0, 1]: 'clip' | 'minmax' (authors: clamp, then min-max)
  identity_variant: str = "standard"  # ArcFace preprocessing: 'standard' | 'official'
  expression_variant: str = "paper"  # 'paper' (Eq. 6) | 'rows' (authors' mean |cos|)
  expression_gamma: float = 0.0  # γ inside the expression term
  histogram_variant: str = "paper"  # see losses.histogram_loss
  histogram_bins: int | None = None
  histogram_size: int = 256  # side at which the histogram compares faces
  compute_dtype: str = "float32"  # synthesis compute dtype ('bfloat16' halves memory)
  remat: bool = False  # rematerialise synthesis blocks in the backward pass
  upconv: str = "separable"  # form of the generator's 2x up layers (ops.modulated_conv2d)

  def weight(self, term: str) -> float:
    return dict(self.weights).get(term, 0.0)

  @property
  def degradation(self) -> degradation.DegradationParams:
    kernel = None
    if self.blur_sigma:
      radius = max(1, int(round(3 * self.blur_sigma)))
      kernel = degradation.gaussian_kernel1d(self.blur_sigma, radius)
    return degradation.DegradationParams(
        kernel=kernel, factor=self.factor,
        jpeg_quality=None if self.jpeg_quality is None else jnp.float32(self.jpeg_quality))


def to_unit_range(x: jax.Array, mode: str) -> jax.Array:
  """Generator output [..., H, W, 3] in ≈[-1, 1] -> [0, 1].

  ``clip``: (x + 1) / 2 clipped. ``minmax``: the authors' script: clamp to [-1, 1], then
  min-max normalise over the image (their batch is one image, so "the whole tensor").
  """
  if mode == "clip":
    return jnp.clip((x + 1.0) * 0.5, 0.0, 1.0)
  if mode == "minmax":
    x = jnp.clip(x, -1.0, 1.0)
    axes = (-3, -2, -1)
    lo, hi = jnp.min(x, axis=axes, keepdims=True), jnp.max(x, axis=axes, keepdims=True)
    return (x - lo) / jnp.maximum(hi - lo, 1e-8)
  raise ValueError(f"unknown output mode {mode!r} (expected 'clip' or 'minmax')")


def render(spec: ObjectiveSpec, params: Any, w: jax.Array, key: jax.Array | None) -> jax.Array:
  """G(w) in [0, 1] for one W+ code: [L, D] -> [H, W, 3]."""
  noise = spec.noise
  if noise == "random" and key is None:
    noise = "const"
  img = stylegan2.synthesis_fn(params["g_params"], params["g_buffers"], spec.g_arch, w[None],
                               noise=noise, rng=key, dtype=jnp.dtype(spec.compute_dtype),
                               remat=spec.remat, upconv=spec.upconv)
  return to_unit_range(img[0], spec.output)


def embed(spec: ObjectiveSpec, params: Any, image01: jax.Array) -> jax.Array:
  """ArcFace features of one image in [0, 1]: [H, W, 3] -> [E]."""
  arch = spec.arcface_arch
  x = arcface.preprocess(image01[None], spec.identity_variant, arch.input_size)
  return arcface.apply(params["arcface"], arch, x)[0]


def batch_embedder(spec: ObjectiveSpec) -> Callable:
  """``embed(params, images01 [B, H, W, 3]) -> [B, E]``: :func:`embed` over a batch, jitted."""
  return jax.jit(jax.vmap(lambda p, im: embed(spec, p, im), in_axes=(None, 0)))


def histogram_input(images01: jax.Array, size: int) -> jax.Array:
  """The images the histogram term compares: [B, H, W, 3] -> [B, size, size, 3].

  Both sides, the generated image (1024 -> 256 in the script) and the LQ (up to 256), go
  through this one resize: torch's ``F.interpolate(mode='bicubic', align_corners=False)`` as
  the authors' script calls it (SPEC.md, "The histogram term exactly as the script computes
  it"), a = -0.75, no antialiasing. Differentiable (static weight matrices).
  """
  if images01.shape[1] == size and images01.shape[2] == size:
    return images01
  return layers.interpolate(images01, (size, size), "bicubic", align_corners=False)


def make_objective(spec: ObjectiveSpec) -> Callable:
  """Returns ``loss(w, params, target, key) -> (total [], terms {name: []})`` for one image."""
  dparams = spec.degradation

  def loss(w, params, target: Target, key):
    x01 = render(spec, params, w, key)  # [H, W, 3]
    terms = {}
    if spec.weight("fidelity"):
      degraded = degradation.degrade(x01[None], dparams)[0]  # [h, w, 3]
      terms["fidelity"] = losses.fidelity_loss(target.lq, degraded, spec.fidelity_clamp,
                                               spec.fidelity_norm)
    if spec.weight("identity"):
      terms["identity"] = losses.identity_loss(target.ref_embedding, embed(spec, params, x01))
    if spec.weight("prior"):
      terms["prior"] = losses.latent_prior_loss(w, target.w_ref)
    if spec.weight("cross"):
      terms["cross"] = losses.cross_loss(w)
    if spec.weight("expression"):
      fn = losses.expression_loss if spec.expression_variant == "paper" else \
          losses.expression_loss_rows
      terms["expression"] = target.expression_on * fn(w, target.direction,
                                                      spec.expression_gamma)
    if spec.weight("histogram"):
      small = histogram_input(x01[None], spec.histogram_size)[0]
      terms["histogram"] = target.histogram_on * losses.histogram_loss(
          small, target.lq_hist, target.mask, bins=spec.histogram_bins,
          variant=spec.histogram_variant)
    if spec.weight("temporal"):
      terms["temporal"] = target.temporal_scale * losses.temporal_loss(w, target.w_neighbour)
    total = sum(spec.weight(k) * v for k, v in terms.items())
    return total, terms

  return loss


def make_target(lq, emb, w_ref, direction=None, expression_on=None, lq_hist=None,
                hist_size: int = 8, mask=None, w_neighbour=None, temporal_scale=None) -> Target:
  """A batched :class:`Target` with neutral defaults for the parts a caller does not use."""
  b = lq.shape[0]
  zeros_w = jnp.zeros_like(w_ref)
  return Target(
      lq=jnp.asarray(lq, jnp.float32), ref_embedding=jnp.asarray(emb, jnp.float32),
      w_ref=jnp.asarray(w_ref, jnp.float32),
      direction=zeros_w if direction is None else jnp.asarray(direction, jnp.float32),
      expression_on=jnp.zeros((b,)) if expression_on is None else jnp.asarray(expression_on,
                                                                                jnp.float32),
      mask=jnp.ones((b, hist_size, hist_size)) if mask is None else jnp.asarray(mask),
      lq_hist=jnp.zeros((b, hist_size, hist_size, 3)) if lq_hist is None else
      jnp.asarray(lq_hist, jnp.float32),
      histogram_on=jnp.zeros((b,)),
      w_neighbour=zeros_w if w_neighbour is None else jnp.asarray(w_neighbour, jnp.float32),
      temporal_scale=jnp.zeros((b,)) if temporal_scale is None else
      jnp.asarray(temporal_scale, jnp.float32))


def target_shapes(spec: ObjectiveSpec, batch: int) -> Target:
  """The shapes of the :class:`Target` a run builds for ``batch`` images (ShapeDtypeStructs)."""
  arch = spec.g_arch
  side = arch.resolution // spec.factor
  emb = spec.arcface_arch.embedding_size
  s = spec.histogram_size
  f32 = lambda *shape: jax.ShapeDtypeStruct((batch,) + shape, jnp.float32)
  return Target(lq=f32(side, side, 3), ref_embedding=f32(emb),
                w_ref=f32(arch.n_latent, arch.w_dim), direction=f32(arch.n_latent, arch.w_dim),
                expression_on=f32(), mask=f32(s, s), lq_hist=f32(s, s, 3), histogram_on=f32(),
                w_neighbour=f32(arch.n_latent, arch.w_dim), temporal_scale=f32())


def _common(config, nets, factor: int) -> dict:
  """The fields every objective of a run shares: architectures, factor, output, numerics."""
  sol = config.solver
  return dict(g_arch=nets.g.arch, arcface_arch=nets.arcface.arch, factor=factor,
              output=sol.output, identity_variant=sol.identity_variant,
              compute_dtype=backend_defaults.resolve("compute_dtype", sol.compute_dtype),
              remat=bool(sol.remat), upconv=backend_defaults.resolve("upconv", sol.upconv))


def spec_from_config(config, nets, factor: int) -> ObjectiveSpec:
  """The static restoration objective a run config describes.

  ``nets`` is a :class:`sair_jax.pipeline.networks.Networks`; ``factor`` the LQ downsampling
  factor.
  """
  loss = config.loss
  weights = tuple((t, float(loss[t])) for t in TERMS if float(loss[t]) != 0.0)
  return ObjectiveSpec(
      weights=weights, noise=config.solver.noise, fidelity_norm=loss.fidelity_norm,
      fidelity_clamp=loss.fidelity_clamp if loss.fidelity_clamp >= 0 else None,
      jpeg_quality=config.degradation.jpeg_quality if config.degradation.jpeg_quality > 0
      else None,
      blur_sigma=config.degradation.blur_sigma or None,
      expression_variant=loss.expression_variant, expression_gamma=loss.expression_gamma,
      histogram_variant=loss.histogram_variant, histogram_bins=loss.histogram_bins,
      histogram_size=min(loss.histogram_size, nets.g.resolution),
      **_common(config, nets, factor))


def projection_spec(config, nets, factor: int) -> ObjectiveSpec:
  """The objective that projects a reference image into W+ when no e4e encoder is at hand.

  The reference, downsampled by ``factor``, is matched by G(w) degraded the same way (the
  fidelity term), with ArcFace identity as a helper; noise is constant. No expression, prior
  or histogram term.
  """
  return ObjectiveSpec(weights=(("fidelity", 1.0), ("identity", 0.1)), noise="const",
                       **_common(config, nets, factor))
