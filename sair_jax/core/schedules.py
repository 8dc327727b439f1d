"""How the latent optimisation moves: Adam, its learning-rate schedule, per-row scales, start.

Learning-rate schedules (optax schedules, step -> lr):

* ``constant`` — the paper: Adam at a fixed lr (0.1).
* ``cosine_decay`` — lr(t) = lr0 · (0.5 + 0.5·cos(π · t)): from lr0 down to 0 at the last step
  (``optax.cosine_decay_schedule``; SGDR's curve without restarts).
* ``cosine_ramp`` — the authors' script: with t = step / steps,
  lr(t) = lr0 · (0.5 − 0.5·cos(π · min(1, (1 − t)/rampdown))) · min(1, t / rampup),
  rampdown = 0.25, rampup = 0.05 (note lr = 0 at step 0, as in the script). Both fractions
  are ``config.solver.rampdown`` / ``rampup``; 0 leaves that end out (``fast``: no warm-up,
  a constant lr and a cosine down to 0 over the last 30% of the steps).

:func:`make_optimizer` is Adam with one of them, optionally scaling the update of the coarse
and the fine rows of W+ differently (:func:`scale_rows`; "coarse" = rows before
``fine_from``, the generator's low resolutions: pose and shape; "fine" = the rest: colour,
texture, detail). :func:`starting_point` is where each image starts: the reference's code w_z
(the paper), or w_z with its fine rows replaced by the generator's mean latent, or w_z pulled
toward the mean (truncation). ``benchmarks/convergence.py`` measures them.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

SCHEDULES = ("constant", "cosine_decay", "cosine_ramp")
STARTS = ("reference", "reference_coarse", "truncated")


def constant(lr: float) -> optax.Schedule:
  """lr at every step."""
  return optax.constant_schedule(lr)


def cosine_ramp(lr: float, steps: int, rampdown: float = 0.25,
                rampup: float = 0.05) -> optax.Schedule:
  """The authors' warm-up + cosine ramp-down over ``steps`` iterations (see module doc).

  ``rampdown`` and ``rampup`` are fractions of ``steps`` in [0, 1]; 0 leaves that ramp out.
  Raises ValueError outside that range.
  """
  if not (0.0 <= rampdown <= 1.0 and 0.0 <= rampup <= 1.0):
    raise ValueError(f"cosine_ramp: rampdown and rampup are fractions of the steps in [0, 1], "
                     f"got rampdown={rampdown}, rampup={rampup}")

  def schedule(count):
    t = jnp.asarray(count, jnp.float32) / steps
    down = jnp.minimum(1.0, (1.0 - t) / rampdown) if rampdown > 0 else 1.0
    down = 0.5 - 0.5 * jnp.cos(jnp.pi * down)
    up = jnp.minimum(1.0, t / rampup) if rampup > 0 else 1.0
    return lr * down * up

  return schedule


def make(name: str, lr: float, steps: int, *, rampdown: float = 0.25,
         rampup: float = 0.05) -> optax.Schedule:
  """Schedule by name: 'constant' | 'cosine_decay' | 'cosine_ramp' (with ``rampdown``,
  ``rampup``; the other two ignore them)."""
  if name == "constant":
    return constant(lr)
  if name == "cosine_decay":
    return optax.cosine_decay_schedule(lr, steps)
  if name == "cosine_ramp":
    return cosine_ramp(lr, steps, rampdown, rampup)
  raise ValueError(f"unknown learning-rate schedule {name!r}; expected one of {SCHEDULES}")


class ScaleRowsState(NamedTuple):
  count: jax.Array  # [] steps taken


def scale_rows(coarse: float, fine: float, fine_from: int,
               fine_start: int = 0) -> optax.GradientTransformation:
  """Multiplies the update of W+ rows ``[0, fine_from)`` by ``coarse`` and of the others by
  ``fine``; the fine rows stay still for the first ``fine_start`` steps (coarse rows first).

  Updates are one image's [L, D] (the solver vmaps the optimiser over the batch).
  """

  def init(params):
    del params
    return ScaleRowsState(jnp.zeros([], jnp.int32))

  def update(updates, state, params=None):
    del params
    rows = jnp.arange(updates.shape[-2])
    fine_now = jnp.where(state.count >= fine_start, fine, 0.0)
    scale = jnp.where(rows < fine_from, coarse, fine_now).astype(updates.dtype)  # [L]
    return updates * scale[:, None], ScaleRowsState(state.count + 1)

  return optax.GradientTransformation(init, update)


def make_optimizer(schedule: str, lr: float, steps: int, *, betas=(0.9, 0.999),
                   row_scales: tuple[float, float] = (1.0, 1.0), fine_from: int = 0,
                   fine_start: int = 0, rampdown: float = 0.25,
                   rampup: float = 0.05) -> optax.GradientTransformation:
  """Adam with the ``schedule`` (see :func:`make`), and per-row scales when not all 1.

  ``row_scales`` = (coarse, fine) multipliers, ``fine_from`` the first fine row,
  ``fine_start`` the step from which fine rows move (see :func:`scale_rows`). With the
  defaults this is exactly ``optax.adam(schedule, b1, b2)``.
  """
  sched = make(schedule, lr, steps, rampdown=rampdown, rampup=rampup)
  b1, b2 = (float(b) for b in betas)
  if tuple(row_scales) == (1.0, 1.0) and fine_start <= 0:
    return optax.adam(sched, b1=b1, b2=b2)
  return optax.chain(optax.scale_by_adam(b1=b1, b2=b2),
                     scale_rows(float(row_scales[0]), float(row_scales[1]), fine_from,
                                fine_start),
                     optax.scale_by_learning_rate(sched))


def starting_point(kind: str, w_ref: np.ndarray, w_avg: np.ndarray, *, fine_from: int,
                   psi: float = 0.7) -> np.ndarray:
  """Where an image's optimisation starts, from its reference code ``w_ref`` [..., L, D].

  * ``reference``: w_z itself (the paper and the authors' script);
  * ``reference_coarse``: w_z's rows before ``fine_from``, the generator's mean latent
    ``w_avg`` [D] for the fine rows (the reference fixes pose and shape; colour and detail
    start neutral and are pulled to the LQ);
  * ``truncated``: ``w_avg + psi (w_z - w_avg)`` on every row.
  The prior term stays centred on w_z whatever the start.
  """
  w_ref = np.asarray(w_ref, np.float32)
  w_avg = np.asarray(w_avg, np.float32)
  if kind == "reference":
    return w_ref
  if kind == "reference_coarse":
    w = np.array(w_ref, copy=True)
    w[..., fine_from:, :] = w_avg
    return w
  if kind == "truncated":
    return (w_avg + psi * (w_ref - w_avg)).astype(np.float32)
  raise ValueError(f"unknown starting point {kind!r}; expected one of {STARTS}")


def fine_rows_from(config, n_latent: int) -> int:
  """The first 'fine' W+ row: ``solver.fine_rows_from``, or half the rows when 0."""
  k = int(config.solver.get("fine_rows_from", 0))
  return k if k > 0 else n_latent // 2


def optimizer_from_config(config, n_latent: int) -> optax.GradientTransformation:
  """The run's optimiser from ``config.solver`` (lr, schedule and its ramps, betas, per-row
  scales)."""
  sol = config.solver
  return make_optimizer(sol.schedule, float(sol.lr), int(sol.steps), betas=tuple(sol.betas),
                        row_scales=(float(sol.coarse_lr_scale), float(sol.fine_lr_scale)),
                        fine_from=fine_rows_from(config, n_latent),
                        fine_start=int(sol.fine_rows_start), rampdown=float(sol.rampdown),
                        rampup=float(sol.rampup))


def check_settings(config) -> None:
  """Raises ValueError, one line naming the field, for a ``config.solver`` value this module
  cannot use (schedule, its ramps, Adam's betas, lr, steps, start)."""
  sol = config.solver
  if sol.schedule not in SCHEDULES:
    raise ValueError(f"config.solver.schedule={sol.schedule!r}: expected one of "
                     f"{', '.join(SCHEDULES)}")
  if sol.start not in STARTS:
    raise ValueError(f"config.solver.start={sol.start!r}: expected one of {', '.join(STARTS)}")
  for field in ("rampup", "rampdown"):
    if not 0.0 <= float(sol[field]) <= 1.0:
      raise ValueError(f"config.solver.{field}={sol[field]}: a fraction of the steps in [0, 1]")
  betas = tuple(sol.betas)
  if len(betas) != 2 or not all(0.0 <= float(b) < 1.0 for b in betas):
    raise ValueError(f"config.solver.betas={betas}: Adam's (b1, b2), each in [0, 1)")
  if not float(sol.lr) > 0:
    raise ValueError(f"config.solver.lr={sol.lr}: must be positive")
  if int(sol.steps) < 1:
    raise ValueError(f"config.solver.steps={sol.steps}: must be at least 1")


def start_from_config(config, w_ref: np.ndarray, w_avg: np.ndarray) -> np.ndarray:
  """Each image's starting code from ``config.solver.start`` (see :func:`starting_point`)."""
  return starting_point(config.solver.start, w_ref, w_avg,
                        fine_from=fine_rows_from(config, np.shape(w_ref)[-2]),
                        psi=float(config.solver.start_psi))
