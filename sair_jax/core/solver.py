"""Batched SAIR optimisation: one W+ code, one Adam state and one loss per image.

The per-image step (loss, gradient, Adam update) is written for ONE image and ``jax.vmap``-ed
over the batch; ``lax.scan`` runs a chunk of steps inside one compiled program with the state
buffers donated. The host sees only chunk boundaries, where :mod:`sair_jax.core.slots` reports
progress, recomputes the face masks of the histogram term (phases), and lets finished images
leave the batch and waiting ones enter it.

The batch axis is sharded over the local devices of a :class:`jax.sharding.Mesh`; every other
array (network parameters) is replicated. Images never interact, so sharding changes nothing
but where each image is computed.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from sair_jax.core import objective, program_stats, schedules


class State(NamedTuple):
  """Optimisation state of a batch (leading axis B everywhere)."""
  w: jax.Array  # [B, L, D] current W+ codes
  opt_state: Any  # per-image Adam state (vmapped)
  key: jax.Array  # [B] per-image PRNG keys
  step: jax.Array  # [B] steps taken
  bad: jax.Array  # [B] bool: a non-finite loss or update was seen (w then stays frozen)


class History(NamedTuple):
  """Per-step values of a chunk: [n_steps, B] each."""
  total: jax.Array
  terms: dict


def batch_mesh(devices=None) -> Mesh:
  """A 1-D mesh named 'batch' over ``devices`` (default: this host's local devices)."""
  devices = jax.local_devices() if devices is None else devices
  return Mesh(np.asarray(devices), ("batch",))


class Solver:
  """Compiles and runs the restoration loop for batches of any size.

  Every (batch size, chunk length) is compiled once, ahead of time and explicitly
  (:meth:`compiled`), so the batch planner can read a program's memory before running it and
  the run reuses exactly that executable.

  Args:
    spec: the static objective (:class:`objective.ObjectiveSpec`).
    params: network parameters {'g_params', 'g_buffers', 'arcface'} (put on the devices once).
    steps: every image's step budget (the lr schedule depends on it).
    lr: base learning rate; ``schedule``: 'constant' | 'cosine_ramp' (Adam with ``betas``).
    optimizer: an optax optimiser of one image's W+ instead (e.g.
      :func:`schedules.optimizer_from_config`); ``lr``, ``schedule`` and ``betas`` are then
      unused.
    mesh: device mesh for the batch axis (default: all local devices).
  """

  def __init__(self, spec: objective.ObjectiveSpec, params: Any, *, steps: int,
               lr: float = 0.1, schedule: str = "constant", betas=(0.9, 0.999),
               optimizer: optax.GradientTransformation | None = None,
               mesh: Mesh | None = None):
    self.spec = spec
    self.steps = steps
    self.mesh = mesh or batch_mesh()
    self.optimizer = optimizer or schedules.make_optimizer(schedule, lr, steps, betas=betas)
    self._loss = objective.make_objective(spec)
    replicated = NamedSharding(self.mesh, P())
    self.params = jax.device_put(params, replicated)
    # Pinned output shardings: the state comes back split over 'batch' exactly as it went in,
    # so consecutive chunks hit the same compiled program.
    self._by_batch = NamedSharding(self.mesh, P("batch"))
    self._run_chunk = jax.jit(self._chunk, static_argnums=(3,), donate_argnums=(0,),
                              out_shardings=(self._by_batch,
                                             NamedSharding(self.mesh, P(None, "batch"))))
    self._render = jax.jit(self._render_batch)
    self._compiled: dict = {}  # (n, abstract state, abstract target) -> jax.stages.Compiled
    self.compile_seconds: dict = {}  # (batch, n) -> seconds spent compiling
    self._step_flops: dict[int, float] = {}  # batch -> XLA's FLOPs of one step

  @property
  def n_devices(self) -> int:
    return self.mesh.devices.size

  def shard(self, tree):
    """Places a batch-major pytree with its leading axis split over the mesh."""
    return jax.device_put(tree, self._by_batch)

  # ---------------------------------------------------------------------------------------
  # One image
  # ---------------------------------------------------------------------------------------

  def _step_one(self, params, w, opt_state, key, step, bad, target):
    """One Adam step for one image. Freezes the image once anything is non-finite."""
    noise_key = jax.random.fold_in(key, step)
    (total, terms), grad = jax.value_and_grad(self._loss, has_aux=True)(
        w, params, target, noise_key)
    updates, new_opt = self.optimizer.update(grad, opt_state, w)
    new_w = optax.apply_updates(w, updates)
    ok = jnp.isfinite(total) & jnp.all(jnp.isfinite(new_w)) & ~bad
    keep = lambda new, old: jnp.where(ok, new, old)
    new_w = keep(new_w, w)
    new_opt = jax.tree_util.tree_map(keep, new_opt, opt_state)
    return new_w, new_opt, step + 1, bad | ~ok, total, terms

  # ---------------------------------------------------------------------------------------
  # Batch
  # ---------------------------------------------------------------------------------------

  def initial_state(self, w_init: jax.Array, seeds: np.ndarray) -> State:
    """A fresh state for ``w_init`` [B, L, D] (Adam at zero), on one device, any B.

    :class:`sair_jax.core.slots.Stream` builds the rows of new images with it and places the
    whole batch afterwards; B need not divide over the mesh.
    """
    # A copy: the state is donated to each chunk and must not alias the caller's arrays.
    w = jnp.array(w_init, dtype=jnp.float32, copy=True)
    opt_state = jax.vmap(self.optimizer.init)(w)
    keys = jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds, jnp.uint32))
    b = w.shape[0]
    return State(w, opt_state, keys, jnp.zeros((b,), jnp.int32), jnp.zeros((b,), bool))

  def init(self, w_init: jax.Array, seeds: np.ndarray) -> State:
    """Starts every image at its ``w_init`` [B, L, D] with a fresh Adam state, split over the
    mesh (B a multiple of the device count)."""
    return self.shard(self.initial_state(w_init, seeds))

  def _chunk(self, state: State, params, target: objective.Target, n: int):
    step_batch = jax.vmap(self._step_one, in_axes=(None, 0, 0, 0, 0, 0, 0))

    def body(carry, _):
      w, opt_state, key, step, bad = carry
      w, opt_state, step, bad, total, terms = step_batch(params, w, opt_state, key, step, bad,
                                                         target)
      return (w, opt_state, key, step, bad), (total, terms)

    carry, (total, terms) = jax.lax.scan(body, tuple(state), None, length=n)
    return State(*carry), History(total, terms)

  def _abstract(self, tree):
    """ShapeDtypeStructs of a batch-major pytree, placed as :meth:`shard` places it."""
    return jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=self._by_batch), tree)

  def abstract_state(self, batch: int) -> State:
    """The shapes of :meth:`init`'s state for ``batch`` images (nothing is computed)."""
    w = jax.ShapeDtypeStruct((batch, self.spec.g_arch.n_latent, self.spec.g_arch.w_dim),
                             jnp.float32)
    return self._abstract(jax.eval_shape(lambda w: self.init(w, np.zeros(batch, np.uint32)), w))

  def compiled(self, batch: int, n: int, target=None):
    """The compiled ``n``-step program for ``batch`` images (compiled once, then cached).

    ``target`` (arrays or shapes) gives the target's shapes; default
    :func:`objective.target_shapes` of the spec, which is what a run builds.
    """
    if target is None:
      target = objective.target_shapes(self.spec, batch)
    state = self.abstract_state(batch)
    target = self._abstract(target)
    key = (n, jax.tree_util.tree_structure(target),
           tuple((t.shape, t.dtype) for t in jax.tree_util.tree_leaves(target)))
    if key not in self._compiled:
      t0 = time.perf_counter()
      self._compiled[key] = self._run_chunk.lower(state, self.params, target, n).compile()
      self.compile_seconds[(batch, n)] = time.perf_counter() - t0
      self._step_flops.setdefault(
          batch, program_stats.ProgramStats.of(self._compiled[key]).flops)
    return self._compiled[key]

  def program_stats(self, batch: int, n: int) -> program_stats.ProgramStats:
    """XLA's FLOPs, bytes and memory of the ``n``-step program for ``batch`` images."""
    return program_stats.ProgramStats.of(self.compiled(batch, n))

  def step_flops(self, batch: int) -> float:
    """XLA's FLOP count of ONE step for ``batch`` images.

    XLA counts a loop body once whatever its trip count, so any compiled chunk's count is one
    step's: read from a chunk program already compiled for ``batch`` (nothing is traced again),
    or from compiling the one-step program.
    """
    if batch not in self._step_flops:
      self.compiled(batch, 1)
    return self._step_flops[batch]

  @property
  def n_compiled(self) -> int:
    """How many programs this solver has compiled (one per batch size and chunk length)."""
    return len(self._compiled)

  def run_chunk(self, state: State, target: objective.Target, n: int) -> tuple[State, History]:
    """``n`` steps for the whole batch in one compiled call (``state`` is donated)."""
    return self.compiled(state.w.shape[0], n, target)(state, self.params, target)

  def _render_batch(self, params, w, keys):
    render = lambda w1, k: objective.render(self.spec, params, w1, k)
    return jax.vmap(render)(w, keys)

  def render(self, w: jax.Array, keys: jax.Array | None = None) -> jax.Array:
    """G(w) in [0, 1] for a batch [B, L, D] -> [B, H, W, 3] (fixed noise key per image)."""
    if keys is None:
      keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(w.shape[0], dtype=jnp.uint32))
    return self._render(self.params, w, keys)
